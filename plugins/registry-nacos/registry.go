package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "nacos"

// Version is the plugin's version as shown by `kite plugins`.
const Version = "0.1.0"

// Defaults for the configuration knobs (those of the Nacos SDKs).
const (
	DefaultGroup        = "DEFAULT_GROUP"
	DefaultCluster      = "DEFAULT"
	DefaultBeatInterval = 5 * time.Second
	DefaultTimeout      = 3 * time.Second
	// defaultPoll is used until a list answer names cacheMillis.
	defaultPoll = 10 * time.Second
	minPoll     = 50 * time.Millisecond
)

// Metadata keys Kite uses inside the Nacos instance metadata.
const (
	MetaVersion = "version"
	MetaZone    = "zone"
	MetaTags    = "tags"
	// MetaWeight records Kite's integer weight so that it round-trips
	// exactly; the Nacos weight (a double, 1.0 = normal) is weight/100.
	MetaWeight = "kite.weight"
)

// Beat response codes (NamingResponseCode).
const (
	codeOK               = 10200
	codeResourceNotFound = 20404
)

// Schema declares the kite.hcl block of the Nacos registry.
var Schema = spi.Schema{
	{Name: "servers", Type: spi.TypeStringList, Required: true, Doc: `Nacos servers: "host:port" or base URLs ("http://h:8848", context path /nacos by default)`},
	{Name: "namespace", Type: spi.TypeString, Doc: "namespace id (default: public)"},
	{Name: "group", Type: spi.TypeString, Doc: `group name (default "DEFAULT_GROUP")`},
	{Name: "cluster", Type: spi.TypeString, Doc: `cluster the instances register in (default "DEFAULT")`},
	{Name: "username", Type: spi.TypeString, Doc: "user for Nacos authentication"},
	{Name: "password", Type: spi.TypeString, Doc: "password for Nacos authentication"},
	{Name: "beat_interval", Type: spi.TypeDuration, Doc: `heartbeat period until the server names one (default "5s")`},
	{Name: "poll_interval", Type: spi.TypeDuration, Doc: "watch polling period (default: the server's cacheMillis, 10s on stock Nacos)"},
	{Name: "timeout", Type: spi.TypeDuration, Doc: `bound on each HTTP request (default "3s")`},
	{Name: "api", Type: spi.TypeString, Doc: `naming API: "v1" (Open API v1, Nacos 1.x-3.x), "v3" (the Nacos 3 client API), or "" (default: v1, switching to v3 when the server answers 410 Gone)`},
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: Version,
		Doc:     "Nacos registry over the naming Open API: register, heartbeat, list, watch by polling",
		Schema:  Schema,
		New:     spi.FactoryOf(New),
	})
}

// Config is the decoded kite.hcl block.
type Config struct {
	Servers      []string `json:"servers"`
	Namespace    string   `json:"namespace,omitempty"`
	Group        string   `json:"group,omitempty"`
	Cluster      string   `json:"cluster,omitempty"`
	Username     string   `json:"username,omitempty"`
	Password     string   `json:"password,omitempty"`
	BeatInterval string   `json:"beat_interval,omitempty"`
	PollInterval string   `json:"poll_interval,omitempty"`
	Timeout      string   `json:"timeout,omitempty"`
	API          string   `json:"api,omitempty"`
}

// Registry is an spi.Registry backed by a Nacos naming server.
type Registry struct {
	api          *apiClient
	transport    *http.Transport
	namespace    string
	group        string
	cluster      string
	beatInterval time.Duration
	pollInterval time.Duration // 0: follow cacheMillis
	timeout      time.Duration
	apiVersion   string      // "", "v1" or "v3" as configured
	v3           atomic.Bool // speak the Nacos 3 client API

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	regs      map[string]*registration // key: service@ip:port
	watchers  map[*watcher]struct{}
	lastKnown map[string][]spi.Instance
}

var _ spi.Registry = (*Registry)(nil)

// registration is one registered instance and its heartbeat goroutine.
type registration struct {
	in     spi.Instance
	params url.Values // identifying + descriptive register parameters
	beat   string     // full beat JSON
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a registry. It does not contact Nacos: a process starts even
// while Nacos is down.
func New(c Config) (*Registry, error) {
	if len(c.Servers) == 0 {
		return nil, errors.New(`nacos registry: servers is required, e.g. servers = ["127.0.0.1:8848"]`)
	}
	var servers []*url.URL
	for _, s := range c.Servers {
		u, err := parseServer(s)
		if err != nil {
			return nil, fmt.Errorf("nacos registry: servers: %q: %w", s, err)
		}
		servers = append(servers, u)
	}
	if (c.Username == "") != (c.Password == "") {
		return nil, errors.New("nacos registry: username and password go together")
	}
	dur := func(name, v string, def time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("nacos registry: %s: %w", name, err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("nacos registry: %s must be positive, got %q", name, v)
		}
		return d, nil
	}
	beat, err := dur("beat_interval", c.BeatInterval, DefaultBeatInterval)
	if err != nil {
		return nil, err
	}
	poll, err := dur("poll_interval", c.PollInterval, 0)
	if err != nil {
		return nil, err
	}
	timeout, err := dur("timeout", c.Timeout, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	if poll > 0 && poll < minPoll {
		poll = minPoll
	}
	group := c.Group
	if group == "" {
		group = DefaultGroup
	}
	if strings.Contains(group, "@@") {
		return nil, fmt.Errorf("nacos registry: group %q may not contain \"@@\"", group)
	}
	if len(group) > maxGroupLength || !groupRE.MatchString(group) {
		return nil, fmt.Errorf("nacos registry: group %q: Nacos accepts at most %d of the characters a-z A-Z 0-9 - _ : . in a group name", group, maxGroupLength)
	}
	cluster := c.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	if len(cluster) > maxClusterLength || !clusterRE.MatchString(cluster) {
		return nil, fmt.Errorf("nacos registry: cluster %q: Nacos accepts 1 to %d of the characters a-z A-Z 0-9 - _ in a cluster name", cluster, maxClusterLength)
	}
	switch c.API {
	case "", "v1", "v3":
	default:
		return nil, fmt.Errorf(`nacos registry: api %q is not "v1", "v3" or "" (automatic)`, c.API)
	}
	// A transport of our own: Close can drop its idle connections, and
	// its settings do not leak into the rest of the process.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	tr.IdleConnTimeout = 90 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		api: &apiClient{
			servers:  servers,
			http:     &http.Client{Transport: tr, Timeout: timeout},
			username: c.Username,
			password: c.Password,
		},
		transport:    tr,
		namespace:    c.Namespace,
		group:        group,
		cluster:      cluster,
		beatInterval: beat,
		pollInterval: poll,
		timeout:      timeout,
		ctx:          ctx,
		cancel:       cancel,
		regs:         make(map[string]*registration),
		watchers:     make(map[*watcher]struct{}),
		lastKnown:    make(map[string][]spi.Instance),
		apiVersion:   c.API,
	}
	r.v3.Store(c.API == "v3")
	return r, nil
}

// grouped is the service name as Nacos stores it.
func (r *Registry) grouped(service string) string { return r.group + "@@" + service }

func (r *Registry) baseParams(service string) url.Values {
	v := url.Values{
		"serviceName": {r.grouped(service)},
		"groupName":   {r.group},
	}
	if r.namespace != "" {
		v.Set("namespaceId", r.namespace)
	}
	return v
}

func checkService(service string) error {
	if service == "" {
		return spi.Errorf(spi.InvalidArgument, "nacos registry: empty service name")
	}
	if strings.Contains(service, "@@") {
		return spi.Errorf(spi.InvalidArgument, "nacos registry: service name %q may not contain \"@@\"", service)
	}
	// ParamCheckRule.serviceNamePatternString: not starting with '@', no
	// whitespace or CJK ideographs, at most 512 long.
	if strings.HasPrefix(service, "@") || len(service) > maxServiceNameLength || strings.IndexFunc(service, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x4E00 && r <= 0x9FA5)
	}) >= 0 {
		return spi.Errorf(spi.InvalidArgument, "nacos registry: service name %q: Nacos refuses names starting with '@', with whitespace or CJK ideographs, or longer than %d", service, maxServiceNameLength)
	}
	return nil
}

// splitAddr splits a host:port address; Nacos knows only IP and port.
func splitAddr(in spi.Instance) (string, int, error) {
	host, portStr, err := net.SplitHostPort(in.Addr)
	if err != nil {
		return "", 0, spi.Errorf(spi.InvalidArgument, "nacos registry: address %q of %q is not host:port (Nacos stores an ip and a port): %v", in.Addr, in.Service, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, spi.Errorf(spi.InvalidArgument, "nacos registry: address %q of %q has no valid port", in.Addr, in.Service)
	}
	return host, port, nil
}

// nacosMetadata packs an instance's labels into Nacos metadata.
func nacosMetadata(in spi.Instance) (map[string]string, error) {
	md := make(map[string]string, len(in.Metadata)+4)
	for k, v := range in.Metadata {
		switch k {
		case MetaVersion, MetaZone, MetaTags, MetaWeight:
			return nil, spi.Errorf(spi.InvalidArgument, "nacos registry: metadata key %q of %v is reserved for the field of the same meaning", k, in)
		}
		md[k] = v
	}
	if in.Version != "" {
		md[MetaVersion] = in.Version
	}
	if in.Zone != "" {
		md[MetaZone] = in.Zone
	}
	if len(in.Tags) > 0 {
		for _, t := range in.Tags {
			if strings.Contains(t, ",") || t == "" {
				return nil, spi.Errorf(spi.InvalidArgument, "nacos registry: tag %q of %v: tags are stored comma-separated and must be non-empty without commas", t, in)
			}
		}
		md[MetaTags] = strings.Join(in.Tags, ",")
	}
	md[MetaWeight] = strconv.Itoa(in.Weight)
	return md, nil
}

// nacosWeight maps Kite's weight (100 = normal) to Nacos's (1.0 = normal).
func nacosWeight(in spi.Instance) float64 { return float64(in.EffectiveWeight()) / 100 }

// Register announces in and starts its heartbeat.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	ip, port, err := splitAddr(in)
	if err != nil {
		return err
	}
	md, err := nacosMetadata(in)
	if err != nil {
		return err
	}
	if w := nacosWeight(in); w > maxWeight {
		return spi.Errorf(spi.InvalidArgument, "nacos registry: weight %d of %v is %v in Nacos (weight/100), above Nacos's maximum of %v", in.Weight, in, w, maxWeight)
	}
	if n := metadataLength(md); n > maxMetadataLength {
		return spi.Errorf(spi.InvalidArgument, "nacos registry: metadata of %v is %d characters with Kite's own keys (%s, %s, %s, %s); Nacos accepts at most %d in total", in, n, MetaVersion, MetaZone, MetaTags, MetaWeight, maxMetadataLength)
	}
	mdJSON, _ := json.Marshal(md)
	weight := strconv.FormatFloat(nacosWeight(in), 'f', -1, 64)
	params := r.baseParams(in.Service)
	params.Set("ip", ip)
	params.Set("port", strconv.Itoa(port))
	params.Set("clusterName", r.cluster)
	params.Set("weight", weight)
	params.Set("enabled", "true")
	params.Set("healthy", "true")
	params.Set("ephemeral", "true")
	params.Set("metadata", string(mdJSON))
	beat, _ := json.Marshal(map[string]any{
		"serviceName": r.grouped(in.Service),
		"ip":          ip,
		"port":        port,
		"cluster":     r.cluster,
		"weight":      nacosWeight(in),
		"metadata":    md,
		"scheduled":   false,
		"period":      r.beatInterval.Milliseconds(),
		"stopped":     false,
		"ephemeral":   true,
	})

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return spi.Errorf(spi.FailedPrecondition, "nacos registry: closed")
	}
	r.mu.Unlock()

	if err := r.registerCall(ctx, params); err != nil {
		return wrap(err, "nacos registry: registering %v", in)
	}

	bctx, cancel := context.WithCancel(r.ctx)
	reg := &registration{in: in, params: params, beat: string(beat), cancel: cancel, done: make(chan struct{})}
	key := in.Key()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		// Close ran meanwhile; do not leave the instance behind.
		r.deleteInstance(context.Background(), params)
		return spi.Errorf(spi.FailedPrecondition, "nacos registry: closed")
	}
	old := r.regs[key]
	r.regs[key] = reg
	r.mu.Unlock()
	if old != nil {
		old.cancel()
		<-old.done
	}
	go r.heartbeat(bctx, reg)
	return nil
}

// heartbeat keeps an ephemeral instance alive: a beat every interval (the
// server's clientBeatInterval once it names one), light beats when the
// server allows them, and a new registration when the server answers
// 20404 (it forgot the instance, e.g. after a restart).
func (r *Registry) heartbeat(ctx context.Context, reg *registration) {
	defer close(reg.done)
	interval := r.beatInterval
	light := false
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.v3.Load() {
			r.beatV3(ctx, reg)
			t.Reset(interval)
			continue
		}
		params := url.Values{}
		for _, k := range []string{"serviceName", "groupName", "namespaceId", "ip", "port", "clusterName"} {
			if v := reg.params.Get(k); v != "" {
				params.Set(k, v)
			}
		}
		if !light {
			params.Set("beat", reg.beat)
		}
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		body, err := r.api.call(cctx, http.MethodPut, "/v1/ns/instance/beat", params)
		cancel()
		if r.fellBack(err) {
			r.beatV3(ctx, reg)
		}
		if err == nil {
			var resp struct {
				ClientBeatInterval int64 `json:"clientBeatInterval"`
				Code               int   `json:"code"`
				LightBeatEnabled   bool  `json:"lightBeatEnabled"`
			}
			if json.Unmarshal(body, &resp) == nil {
				light = resp.LightBeatEnabled
				if resp.ClientBeatInterval > 0 {
					interval = time.Duration(resp.ClientBeatInterval) * time.Millisecond
				}
				if resp.Code == codeResourceNotFound {
					rctx, cancel := context.WithTimeout(ctx, r.timeout)
					_, _ = r.api.call(rctx, http.MethodPost, "/v1/ns/instance", reg.params)
					cancel()
				}
			}
		}
		// On failure (Nacos unreachable) keep beating at the same pace: the
		// first beat that gets through, or the 20404 after expiry, brings
		// the instance back.
		t.Reset(interval)
	}
}

// Deregister withdraws in and stops its heartbeat; an unknown instance is
// not an error.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	ip, port, err := splitAddr(in)
	if err != nil {
		return err
	}
	r.mu.Lock()
	reg := r.regs[in.Key()]
	delete(r.regs, in.Key())
	r.mu.Unlock()
	if reg != nil {
		// Stop beating first, or a full beat could re-create it.
		reg.cancel()
		<-reg.done
	}
	params := r.baseParams(in.Service)
	params.Set("ip", ip)
	params.Set("port", strconv.Itoa(port))
	params.Set("clusterName", r.cluster)
	params.Set("ephemeral", "true")
	if err := r.deleteInstance(ctx, params); err != nil {
		return wrap(err, "nacos registry: deregistering %v", in)
	}
	return nil
}

func (r *Registry) deleteInstance(ctx context.Context, params url.Values) error {
	del := url.Values{}
	for _, k := range []string{"serviceName", "groupName", "namespaceId", "ip", "port", "clusterName"} {
		if v := params.Get(k); v != "" {
			del.Set(k, v)
		}
	}
	del.Set("ephemeral", "true")
	if !r.v3.Load() {
		_, err := r.api.call(ctx, http.MethodDelete, "/v1/ns/instance", del)
		if !r.fellBack(err) {
			return err
		}
	}
	return r.resultCall(ctx, http.MethodDelete, pathV3Instance, r.v3Params(del))
}

// listResponse is the JSON of GET /v1/ns/instance/list.
type listResponse struct {
	Name        string     `json:"name"`
	CacheMillis int64      `json:"cacheMillis"`
	Checksum    string     `json:"checksum"`
	Hosts       []hostJSON `json:"hosts"`
}

type hostJSON struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     *bool             `json:"enabled"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

// list asks Nacos for the healthy instances of service and converts them.
func (r *Registry) list(ctx context.Context, service string) ([]spi.Instance, listResponse, error) {
	if r.v3.Load() {
		return r.listV3(ctx, service)
	}
	params := r.baseParams(service)
	params.Set("healthyOnly", "true")
	params.Set("clusters", "")
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	body, err := r.api.call(cctx, http.MethodGet, "/v1/ns/instance/list", params)
	if r.fellBack(err) {
		return r.listV3(ctx, service)
	}
	var resp listResponse
	if err != nil {
		var ae *apiError
		// Some Nacos versions answer 404 "service not found" for a service
		// nobody registered yet: that is an empty service, not a failure.
		if errors.As(err, &ae) && ae.status == http.StatusNotFound && strings.Contains(strings.ToLower(ae.body), "not found") && !strings.Contains(ae.body, "<html") {
			r.remember(service, nil)
			return nil, resp, nil
		}
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, resp, spi.WrapError(spi.Unavailable, err, "nacos registry: listing %q: no answer within %v", service, r.timeout)
		}
		return nil, resp, wrap(err, "nacos registry: listing %q", service)
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, resp, spi.WrapError(spi.Unavailable, err, "nacos registry: listing %q: answer is not JSON: %.200s", service, body)
	}
	list := make([]spi.Instance, 0, len(resp.Hosts))
	for _, h := range resp.Hosts {
		if !h.Healthy || (h.Enabled != nil && !*h.Enabled) || h.Weight <= 0 {
			continue
		}
		list = append(list, toInstance(service, h))
	}
	registrykit.SortByAddr(list)
	r.remember(service, list)
	return list, resp, nil
}

// toInstance converts a Nacos host into an instance.
func toInstance(service string, h hostJSON) spi.Instance {
	in := spi.Instance{Service: service, Addr: net.JoinHostPort(h.IP, strconv.Itoa(h.Port))}
	// Kite's own weight wins only while it still matches the Nacos weight:
	// an operator who changes the weight in the console is obeyed.
	in.Weight = int(math.Round(h.Weight * 100))
	if in.Weight < 1 {
		in.Weight = 1
	}
	var md map[string]string
	for k, v := range h.Metadata {
		switch k {
		case MetaVersion:
			in.Version = v
		case MetaZone:
			in.Zone = v
		case MetaTags:
			if v != "" {
				in.Tags = strings.Split(v, ",")
			}
		case MetaWeight:
			if w, err := strconv.Atoi(v); err == nil && math.Abs(nacosWeight(spi.Instance{Weight: w})-h.Weight) < 1e-9 {
				in.Weight = w
			}
		default:
			if md == nil {
				md = make(map[string]string, len(h.Metadata))
			}
			md[k] = v
		}
	}
	in.Metadata = md
	return in
}

func (r *Registry) remember(service string, list []spi.Instance) {
	r.mu.Lock()
	r.lastKnown[service] = registrykit.CloneAll(list)
	r.mu.Unlock()
}

// Resolve lists the healthy, enabled instances of service. When Nacos
// cannot be reached it returns the last list this registry saw for
// service, if any.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	list, _, err := r.list(ctx, service)
	if err != nil {
		if spi.CodeOf(err) == spi.Unavailable || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.mu.Lock()
			last, ok := r.lastKnown[service]
			r.mu.Unlock()
			if ok {
				return registrykit.CloneAll(last), nil
			}
		}
		return nil, err
	}
	if list == nil {
		list = []spi.Instance{}
	}
	return list, nil
}

// Close stops every watch and heartbeat and deregisters every instance
// registered through this registry.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	regs := r.regs
	r.regs = make(map[string]*registration)
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()

	r.cancel()
	for _, w := range ws {
		w.Stop()
	}
	var errs []error
	for _, reg := range regs {
		<-reg.done
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		if err := r.deleteInstance(ctx, reg.params); err != nil {
			errs = append(errs, wrap(err, "nacos registry: deregistering %v", reg.in))
		}
		cancel()
	}
	r.transport.CloseIdleConnections()
	return errors.Join(errs...)
}
