package eureka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "eureka"

// Version is the plugin's version as shown by `kite plugins`.
const Version = "0.1.0"

// Defaults (those of the Eureka client).
const (
	DefaultRenewal  = 30 * time.Second // renewalIntervalInSecs
	DefaultDuration = 90 * time.Second // durationInSecs
	DefaultPoll     = 30 * time.Second // registryFetchIntervalSeconds
	DefaultTimeout  = 5 * time.Second
	minPoll         = 20 * time.Millisecond
)

// Eureka instance statuses.
const (
	StatusUp           = "UP"
	StatusDown         = "DOWN"
	StatusOutOfService = "OUT_OF_SERVICE"
	StatusStarting     = "STARTING"
)

// Metadata keys Kite uses inside the Eureka instance metadata.
const (
	MetaVersion = "kite.version"
	MetaZone    = "kite.zone"
	MetaTags    = "kite.tags"
	// MetaWeight is Kite's weight; Eureka has none of its own.
	MetaWeight = "kite.weight"
	// MetaService is the service name as given: Eureka upper-cases
	// application names.
	MetaService = "kite.service"
)

// Metadata keys become XML element names for clients that fetch XML.
var metaKeyFormat = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*$`)

// Schema declares the kite.hcl block of the Eureka registry.
var Schema = spi.Schema{
	{Name: "servers", Type: spi.TypeStringList, Required: true, Doc: `Eureka servers: "host:port" or base URLs ("http://user:pass@h:8761/eureka"; the path defaults to /eureka)`},
	{Name: "renewal_interval", Type: spi.TypeDuration, Doc: `heartbeat period, sent as leaseInfo.renewalIntervalInSecs (default "30s")`},
	{Name: "lease_duration", Type: spi.TypeDuration, Doc: `leaseInfo.durationInSecs, whole seconds: the server evicts an instance not renewed for about twice this (default "90s")`},
	{Name: "poll_interval", Type: spi.TypeDuration, Doc: `watch refresh period: one delta fetch per period (default "30s")`},
	{Name: "timeout", Type: spi.TypeDuration, Doc: `bound on each HTTP request (default "5s")`},
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: Version,
		Doc:     "Eureka registry over the REST API: register, heartbeat, full and delta fetch",
		Schema:  Schema,
		New:     spi.FactoryOf(New),
	})
}

// Config is the decoded kite.hcl block.
type Config struct {
	Servers         []string `json:"servers"`
	RenewalInterval string   `json:"renewal_interval,omitempty"`
	LeaseDuration   string   `json:"lease_duration,omitempty"`
	PollInterval    string   `json:"poll_interval,omitempty"`
	Timeout         string   `json:"timeout,omitempty"`
}

// Registry is an spi.Registry backed by Eureka.
type Registry struct {
	api       *apiClient
	transport *http.Transport
	renewal   time.Duration
	duration  time.Duration
	poll      time.Duration
	timeout   time.Duration

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	regs      map[string]*registration // by instance key
	lastKnown map[string][]spi.Instance

	cache *cache
}

var _ spi.Registry = (*Registry)(nil)

type registration struct {
	in     spi.Instance
	app    string
	id     string
	body   map[string]any
	dirty  int64
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a registry. It does not contact Eureka.
func New(c Config) (*Registry, error) {
	if len(c.Servers) == 0 {
		return nil, errors.New(`eureka registry: servers is required, e.g. servers = ["http://127.0.0.1:8761/eureka"]`)
	}
	var servers []*url.URL
	for _, s := range c.Servers {
		u, err := parseServer(s)
		if err != nil {
			return nil, fmt.Errorf("eureka registry: servers: %q: %w", s, err)
		}
		servers = append(servers, u)
	}
	dur := func(name, v string, def time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("eureka registry: %s: %w", name, err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("eureka registry: %s must be positive, got %q", name, v)
		}
		return d, nil
	}
	renewal, err := dur("renewal_interval", c.RenewalInterval, DefaultRenewal)
	if err != nil {
		return nil, err
	}
	duration, err := dur("lease_duration", c.LeaseDuration, DefaultDuration)
	if err != nil {
		return nil, err
	}
	if duration%time.Second != 0 {
		return nil, fmt.Errorf("eureka registry: lease_duration %v is not whole seconds (Eureka's durationInSecs)", duration)
	}
	if duration <= renewal {
		return nil, fmt.Errorf("eureka registry: lease_duration %v must exceed renewal_interval %v, or every instance expires between heartbeats", duration, renewal)
	}
	poll, err := dur("poll_interval", c.PollInterval, DefaultPoll)
	if err != nil {
		return nil, err
	}
	poll = max(poll, minPoll)
	timeout, err := dur("timeout", c.Timeout, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		api:       &apiClient{servers: servers, http: &http.Client{Transport: tr, Timeout: timeout}},
		transport: tr,
		renewal:   renewal,
		duration:  duration,
		poll:      poll,
		timeout:   timeout,
		ctx:       ctx,
		cancel:    cancel,
		regs:      make(map[string]*registration),
		lastKnown: make(map[string][]spi.Instance),
	}
	r.cache = newCache(r)
	return r, nil
}

// appName is the Eureka application of service: Eureka upper-cases it.
func appName(service string) string { return strings.ToUpper(service) }

func checkService(service string) error {
	if service == "" {
		return spi.Errorf(spi.InvalidArgument, "eureka registry: empty service name")
	}
	if strings.ContainsAny(service, "/?#%\\ \t\r\n") {
		return spi.Errorf(spi.InvalidArgument, "eureka registry: service name %q may not contain '/', '?', '#', '%%', '\\' or spaces (Eureka puts it in URL paths)", service)
	}
	return nil
}

// instanceBody validates in and builds its InstanceInfo JSON.
func (r *Registry) instanceBody(in spi.Instance, dirty int64) (map[string]any, error) {
	if err := checkService(in.Service); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(in.Addr)
	if err == nil && strings.Contains(in.Addr, "://") {
		err = errors.New("a URL, not an address")
	}
	if err != nil {
		return nil, spi.Errorf(spi.InvalidArgument, "eureka registry: address %q of %q is not host:port (Eureka stores a host and a port): %v", in.Addr, in.Service, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 || host == "" {
		return nil, spi.Errorf(spi.InvalidArgument, "eureka registry: address %q of %q has no valid host and port", in.Addr, in.Service)
	}
	md := make(map[string]string, len(in.Metadata)+5)
	for k, v := range in.Metadata {
		switch {
		case k == MetaVersion || k == MetaZone || k == MetaTags || k == MetaWeight || k == MetaService:
			return nil, spi.Errorf(spi.InvalidArgument, "eureka registry: metadata key %q of %v is reserved for the field of the same meaning", k, in)
		case !metaKeyFormat.MatchString(k) || strings.HasPrefix(strings.ToLower(k), "xml"):
			return nil, spi.Errorf(spi.InvalidArgument, "eureka registry: metadata key %q of %v: Eureka metadata keys become XML element names (a letter or '_', then letters, digits, '.', '_', '-')", k, in)
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
			if t == "" || strings.Contains(t, ",") {
				return nil, spi.Errorf(spi.InvalidArgument, "eureka registry: tag %q of %v: tags are stored comma-separated and must be non-empty without commas", t, in)
			}
		}
		md[MetaTags] = strings.Join(in.Tags, ",")
	}
	md[MetaWeight] = strconv.Itoa(in.Weight)
	md[MetaService] = in.Service
	renewSecs := int(math.Ceil(r.renewal.Seconds()))
	return map[string]any{"instance": instanceJSON{
		InstanceID:         in.Addr,
		HostName:           host,
		App:                appName(in.Service),
		IPAddr:             host,
		Status:             StatusUp,
		Port:               &portJSON{Number: json.Number(strconv.Itoa(port)), Enabled: "true"},
		SecurePort:         &portJSON{Number: "443", Enabled: "false"},
		DataCenterInfo:     map[string]string{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		LeaseInfo:          &leaseJSON{RenewalIntervalInSecs: renewSecs, DurationInSecs: int(r.duration / time.Second)},
		Metadata:           md,
		VIPAddress:         in.Service,
		SecureVIPAddress:   in.Service,
		LastDirtyTimestamp: strconv.FormatInt(dirty, 10),
	}}, nil
}

func instancePath(app, id string) string {
	return "/apps/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

// Register announces in (status UP) and starts its heartbeat.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	dirty := time.Now().UnixMilli()
	body, err := r.instanceBody(in, dirty)
	if err != nil {
		return err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return spi.Errorf(spi.FailedPrecondition, "eureka registry: closed")
	}
	app := appName(in.Service)
	if _, err := r.api.call(ctx, http.MethodPost, "/apps/"+url.PathEscape(app), nil, body); err != nil {
		return wrap(err, "eureka registry: registering %v", in)
	}
	bctx, cancel := context.WithCancel(r.ctx)
	reg := &registration{in: in, app: app, id: in.Addr, body: body, dirty: dirty, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		_, _ = r.api.call(context.Background(), http.MethodDelete, instancePath(app, in.Addr), nil, nil)
		return spi.Errorf(spi.FailedPrecondition, "eureka registry: closed")
	}
	old := r.regs[in.Key()]
	r.regs[in.Key()] = reg
	r.wg.Add(1)
	r.mu.Unlock()
	if old != nil {
		old.cancel()
		<-old.done
	}
	go r.heartbeat(bctx, reg)
	return nil
}

// heartbeat renews the lease every renewal interval; a 404 (the server
// does not know the instance, or holds older data) registers it again.
func (r *Registry) heartbeat(ctx context.Context, reg *registration) {
	defer r.wg.Done()
	defer close(reg.done)
	t := time.NewTicker(r.renewal)
	defer t.Stop()
	q := url.Values{"status": {StatusUp}, "lastDirtyTimestamp": {strconv.FormatInt(reg.dirty, 10)}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		_, err := r.api.call(cctx, http.MethodPut, instancePath(reg.app, reg.id), q, nil)
		if statusOf(err) == http.StatusNotFound {
			_, _ = r.api.call(cctx, http.MethodPost, "/apps/"+url.PathEscape(reg.app), nil, reg.body)
		}
		cancel()
	}
}

// Deregister cancels in's lease; an unknown instance is not an error.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	r.mu.Lock()
	reg := r.regs[in.Key()]
	delete(r.regs, in.Key())
	r.mu.Unlock()
	if reg != nil {
		reg.cancel()
		<-reg.done
	}
	_, err := r.api.call(ctx, http.MethodDelete, instancePath(appName(in.Service), in.Addr), nil, nil)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return wrap(err, "eureka registry: deregistering %v", in)
	}
	return nil
}

// SetStatus sets a status override on an instance (PUT .../status):
// OUT_OF_SERVICE takes it out of every client's list while it keeps
// renewing, UP puts it back. "" removes the override (DELETE .../status).
func (r *Registry) SetStatus(ctx context.Context, in spi.Instance, status string) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	switch status {
	case StatusUp, StatusDown, StatusOutOfService, StatusStarting, "":
	default:
		return spi.Errorf(spi.InvalidArgument, "eureka registry: status %q is not UP, DOWN, STARTING or OUT_OF_SERVICE", status)
	}
	method, q := http.MethodPut, url.Values{"value": {status}}
	if status == "" {
		method, q = http.MethodDelete, nil
	}
	if _, err := r.api.call(ctx, method, instancePath(appName(in.Service), in.Addr)+"/status", q, nil); err != nil {
		return wrap(err, "eureka registry: setting status %q of %v", status, in)
	}
	return nil
}

// toInstances converts an application's instances, keeping those UP
// and registered for service (Eureka folds names that differ only in
// case into one application).
func toInstances(service string, list []instanceJSON) ([]spi.Instance, error) {
	out := make([]spi.Instance, 0, len(list))
	for _, ij := range list {
		if ij.Status != StatusUp {
			continue
		}
		if s, ok := ij.Metadata[MetaService]; ok && s != service {
			continue
		}
		in, err := toInstance(service, ij)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	registrykit.SortByAddr(out)
	return out, nil
}

func toInstance(service string, ij instanceJSON) (spi.Instance, error) {
	port, err := ij.Port.number()
	if err != nil {
		return spi.Instance{}, fmt.Errorf("instance %q: %v", ij.InstanceID, err)
	}
	host := ij.IPAddr
	if host == "" {
		host = ij.HostName
	}
	if host == "" {
		return spi.Instance{}, fmt.Errorf("instance %q has neither ipAddr nor hostName", ij.InstanceID)
	}
	in := spi.Instance{Service: service, Addr: net.JoinHostPort(host, strconv.Itoa(port))}
	var md map[string]string
	for k, v := range ij.Metadata {
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
			if w, err := strconv.Atoi(v); err == nil {
				in.Weight = w
			}
		case MetaService, "@class":
		default:
			if md == nil {
				md = make(map[string]string, len(ij.Metadata))
			}
			md[k] = v
		}
	}
	in.Metadata = md
	return in, nil
}

// Resolve reads GET /apps/{APP} and returns the instances that are UP.
// While no server answers it returns the last list this registry saw for
// service, if any.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	list, err := r.fetchApp(ctx, service)
	if err != nil {
		if spi.CodeOf(err) == spi.Unavailable {
			r.mu.Lock()
			last, ok := r.lastKnown[service]
			r.mu.Unlock()
			if ok {
				return registrykit.CloneAll(last), nil
			}
		}
		return nil, err
	}
	return list, nil
}

func (r *Registry) fetchApp(ctx context.Context, service string) ([]spi.Instance, error) {
	body, err := r.api.call(ctx, http.MethodGet, "/apps/"+url.PathEscape(appName(service)), nil, nil)
	if statusOf(err) == http.StatusNotFound {
		r.remember(service, nil)
		return []spi.Instance{}, nil // an application without instances
	}
	if err != nil {
		return nil, wrap(err, "eureka registry: resolving %q", service)
	}
	var resp struct {
		Application *applicationJSON `json:"application"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Application == nil {
		if err == nil {
			err = errors.New(`no "application" object`)
		}
		return nil, spi.WrapError(spi.Unavailable, err, "eureka registry: resolving %q: the answer is not Eureka's application JSON (%v): %.200q", service, err, body)
	}
	list, err := toInstances(service, resp.Application.Instance)
	if err != nil {
		return nil, spi.WrapError(spi.Unavailable, err, "eureka registry: resolving %q: %v", service, err)
	}
	r.remember(service, list)
	return list, nil
}

func (r *Registry) remember(service string, list []spi.Instance) {
	r.mu.Lock()
	r.lastKnown[service] = registrykit.CloneAll(list)
	r.mu.Unlock()
}

// Close stops watches and heartbeats and cancels every lease taken
// through this registry.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	regs := r.regs
	r.regs = nil
	r.mu.Unlock()
	r.cancel()
	r.cache.close()
	r.wg.Wait()
	var errs []error
	for _, reg := range regs {
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		_, err := r.api.call(ctx, http.MethodDelete, instancePath(reg.app, reg.id), nil, nil)
		cancel()
		if err != nil && statusOf(err) != http.StatusNotFound {
			errs = append(errs, wrap(err, "eureka registry: deregistering %v", reg.in))
		}
	}
	r.transport.CloseIdleConnections()
	return errors.Join(errs...)
}
