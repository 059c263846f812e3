package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "consul"

// Version is the plugin's version as shown by `kite plugins`.
const Version = "0.1.0"

// Defaults for the configuration knobs.
const (
	DefaultAddress         = "127.0.0.1:8500"
	DefaultCheckTTL        = 10 * time.Second
	DefaultDeregisterAfter = time.Minute
	DefaultWait            = time.Minute
	DefaultTimeout         = 5 * time.Second
	minCheckTTL            = 100 * time.Millisecond
)

// Metadata keys Kite uses inside the Consul service Meta. Consul allows
// only [a-zA-Z0-9_-] in keys, hence the dashes.
const (
	MetaVersion = "kite-version"
	MetaZone    = "kite-zone"
	// MetaWeight records Kite's exact weight (0 included); Consul's
	// Weights.Passing must be 1..65535.
	MetaWeight = "kite-weight"
)

// Consul's limits on service metadata (agent/structs.validateMetaPair).
const (
	metaMaxPairs    = 64
	metaKeyMaxLen   = 128
	metaValueMaxLen = 512
	maxDNSWeight    = 65535
)

var metaKeyFormat = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Schema declares the kite.hcl block of the Consul registry.
var Schema = spi.Schema{
	{Name: "address", Type: spi.TypeString, Doc: `Consul agent HTTP address, "host:port" or "http(s)://host:port" (default "127.0.0.1:8500")`},
	{Name: "token", Type: spi.TypeString, Doc: "ACL token sent as X-Consul-Token (default: none)"},
	{Name: "datacenter", Type: spi.TypeString, Doc: "datacenter to resolve in (default: the agent's)"},
	{Name: "check_ttl", Type: spi.TypeDuration, Doc: `TTL of each instance's health check; it is renewed every third of it (default "10s")`},
	{Name: "deregister_after", Type: spi.TypeDuration, Doc: `DeregisterCriticalServiceAfter: a crashed process's instance is removed after its check stays critical this long (default "1m", Consul's minimum)`},
	{Name: "wait", Type: spi.TypeDuration, Doc: `longest a watch's blocking query waits for a change (default "1m", at most "10m")`},
	{Name: "timeout", Type: spi.TypeDuration, Doc: `bound on each non-blocking request (default "5s")`},
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: Version,
		Doc:     "Consul registry: agent service with a TTL check, watched with blocking health queries",
		Schema:  Schema,
		New:     spi.FactoryOf(New),
	})
}

// Config is the decoded kite.hcl block.
type Config struct {
	Address         string `json:"address,omitempty"`
	Token           string `json:"token,omitempty"`
	Datacenter      string `json:"datacenter,omitempty"`
	CheckTTL        string `json:"check_ttl,omitempty"`
	DeregisterAfter string `json:"deregister_after,omitempty"`
	Wait            string `json:"wait,omitempty"`
	Timeout         string `json:"timeout,omitempty"`
}

// Registry is an spi.Registry backed by a Consul agent.
type Registry struct {
	client          *api.Client
	transport       *http.Transport
	address         string
	datacenter      string
	checkTTL        time.Duration
	deregisterAfter time.Duration
	wait            time.Duration
	timeout         time.Duration

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	beat   chan struct{} // closed when the heartbeat goroutine ends

	mu        sync.Mutex
	closed    bool
	regs      map[string]*api.AgentServiceRegistration // by service ID
	watchers  map[*watcher]struct{}
	lastKnown map[string][]spi.Instance
}

var _ spi.Registry = (*Registry)(nil)

// New builds a registry. It does not contact Consul: a process starts
// even while the agent is down.
func New(c Config) (*Registry, error) {
	addr := strings.TrimSpace(c.Address)
	if addr == "" {
		addr = DefaultAddress
	}
	scheme := "http"
	if s, rest, ok := strings.Cut(addr, "://"); ok {
		if s != "http" && s != "https" {
			return nil, fmt.Errorf("consul registry: address %q: scheme %q is not http or https", c.Address, s)
		}
		scheme, addr = s, strings.TrimSuffix(rest, "/")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("consul registry: address %q is not host:port: %v", c.Address, err)
	}
	dur := func(name, v string, def time.Duration) (time.Duration, error) {
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("consul registry: %s: %w", name, err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("consul registry: %s must be positive, got %q", name, v)
		}
		return d, nil
	}
	ttl, err := dur("check_ttl", c.CheckTTL, DefaultCheckTTL)
	if err != nil {
		return nil, err
	}
	if ttl < minCheckTTL {
		return nil, fmt.Errorf("consul registry: check_ttl %v is below %v", ttl, minCheckTTL)
	}
	dereg, err := dur("deregister_after", c.DeregisterAfter, DefaultDeregisterAfter)
	if err != nil {
		return nil, err
	}
	wait, err := dur("wait", c.Wait, DefaultWait)
	if err != nil {
		return nil, err
	}
	if wait > 10*time.Minute {
		return nil, fmt.Errorf("consul registry: wait %v is above Consul's 10m max_query_time", wait)
	}
	timeout, err := dur("timeout", c.Timeout, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	// A transport of our own: Close drops its idle connections, and its
	// settings do not leak into the rest of the process. No client-wide
	// timeout: blocking queries last up to wait+wait/16; every request has
	// a context deadline instead.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	cli, err := api.NewClient(&api.Config{
		Address:    addr,
		Scheme:     scheme,
		Datacenter: c.Datacenter,
		Token:      c.Token,
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		return nil, fmt.Errorf("consul registry: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		client:          cli,
		transport:       tr,
		address:         addr,
		datacenter:      c.Datacenter,
		checkTTL:        ttl,
		deregisterAfter: dereg,
		wait:            wait,
		timeout:         timeout,
		ctx:             ctx,
		cancel:          cancel,
		beat:            make(chan struct{}),
		regs:            make(map[string]*api.AgentServiceRegistration),
		watchers:        make(map[*watcher]struct{}),
		lastKnown:       make(map[string][]spi.Instance),
	}
	go r.heartbeat()
	return r, nil
}

// checkService refuses names that cannot travel in a URL path segment:
// the agent API puts the name and the service id in the path.
func checkService(service string) error {
	if service == "" {
		return spi.Errorf(spi.InvalidArgument, "consul registry: empty service name")
	}
	if strings.ContainsAny(service, "/?#%\\ \t\r\n") {
		return spi.Errorf(spi.InvalidArgument, "consul registry: service name %q may not contain '/', '?', '#', '%%', '\\' or spaces (Consul puts it in URL paths)", service)
	}
	return nil
}

// serviceID is the agent service id of in: one per service and address,
// so registering the same instance again replaces it. IPv6 brackets are
// dropped: the id travels in URL paths.
func serviceID(in spi.Instance) string {
	return "kite-" + in.Service + "-" + strings.NewReplacer("[", "", "]", "").Replace(in.Addr)
}

func checkID(id string) string { return "service:" + id }

// toRegistration validates in against Consul's limits and builds its
// agent registration.
func (r *Registry) toRegistration(in spi.Instance) (*api.AgentServiceRegistration, error) {
	if err := checkService(in.Service); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(in.Addr)
	if err == nil && strings.Contains(in.Addr, "://") {
		err = errors.New("a URL, not an address")
	}
	if err != nil {
		return nil, spi.Errorf(spi.InvalidArgument, "consul registry: address %q of %q is not host:port (Consul stores an address and a port): %v", in.Addr, in.Service, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, spi.Errorf(spi.InvalidArgument, "consul registry: address %q of %q has no valid port", in.Addr, in.Service)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, spi.Errorf(spi.InvalidArgument, "consul registry: address %q of %q is not one a client can dial (Consul refuses unspecified addresses)", in.Addr, in.Service)
	}
	meta := make(map[string]string, len(in.Metadata)+3)
	for k, v := range in.Metadata {
		switch {
		case k == MetaVersion || k == MetaZone || k == MetaWeight:
			return nil, spi.Errorf(spi.InvalidArgument, "consul registry: metadata key %q of %v is reserved for the field of the same meaning", k, in)
		case !metaKeyFormat.MatchString(k):
			return nil, spi.Errorf(spi.InvalidArgument, "consul registry: metadata key %q of %v: Consul allows only letters, digits, '_' and '-' in keys", k, in)
		case len(k) > metaKeyMaxLen:
			return nil, spi.Errorf(spi.InvalidArgument, "consul registry: metadata key %q of %v is longer than Consul's %d characters", k, in, metaKeyMaxLen)
		case strings.HasPrefix(k, "consul-"):
			return nil, spi.Errorf(spi.InvalidArgument, "consul registry: metadata key %q of %v: the prefix \"consul-\" is reserved by Consul", k, in)
		case len(v) > metaValueMaxLen:
			return nil, spi.Errorf(spi.InvalidArgument, "consul registry: metadata value of %q of %v is %d bytes, above Consul's %d", k, in, len(v), metaValueMaxLen)
		}
		meta[k] = v
	}
	if in.Version != "" {
		meta[MetaVersion] = in.Version
	}
	if in.Zone != "" {
		meta[MetaZone] = in.Zone
	}
	meta[MetaWeight] = strconv.Itoa(in.Weight)
	if len(meta) > metaMaxPairs {
		return nil, spi.Errorf(spi.InvalidArgument, "consul registry: %v has %d metadata pairs with Kite's own; Consul allows %d", in, len(meta), metaMaxPairs)
	}
	id := serviceID(in)
	return &api.AgentServiceRegistration{
		ID:      id,
		Name:    in.Service,
		Tags:    in.Tags,
		Address: host,
		Port:    port,
		Meta:    meta,
		Weights: &api.AgentWeights{Passing: consulWeight(in.EffectiveWeight()), Warning: 1},
		Check: &api.AgentServiceCheck{
			CheckID:                        checkID(id),
			Name:                           "kite heartbeat",
			TTL:                            r.checkTTL.String(),
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: r.deregisterAfter.String(),
		},
	}, nil
}

// consulWeight clamps a Kite weight into Consul's 1..65535.
func consulWeight(w int) int { return min(max(w, 1), maxDNSWeight) }

// Register announces in on the agent with a passing TTL check, which the
// registry renews every third of check_ttl until Deregister or Close.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	reg, err := r.toRegistration(in)
	if err != nil {
		return err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return spi.Errorf(spi.FailedPrecondition, "consul registry: closed")
	}
	if err := r.register(ctx, reg); err != nil {
		return wrap(err, "consul registry: registering %v", in)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		// Close ran meanwhile: do not leave the instance behind.
		_ = r.deregister(context.Background(), reg.ID)
		return spi.Errorf(spi.FailedPrecondition, "consul registry: closed")
	}
	r.regs[reg.ID] = reg
	r.mu.Unlock()
	return nil
}

func (r *Registry) register(ctx context.Context, reg *api.AgentServiceRegistration) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(cctx))
}

func (r *Registry) deregister(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.client.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(cctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return nil // unknown: already gone
	}
	return err
}

// heartbeat renews every registration's TTL check every third of
// check_ttl. A check the agent does not know (the agent restarted, or an
// operator removed the service) is registered again.
func (r *Registry) heartbeat() {
	defer close(r.beat)
	t := time.NewTicker(r.checkTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		regs := make([]*api.AgentServiceRegistration, 0, len(r.regs))
		for _, reg := range r.regs {
			regs = append(regs, reg)
		}
		r.mu.Unlock()
		for _, reg := range regs {
			ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
			err := r.client.Agent().UpdateTTLOpts(checkID(reg.ID), "kite: alive", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx))
			cancel()
			var se api.StatusError
			if errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusInternalServerError) {
				r.mu.Lock()
				current := r.regs[reg.ID] == reg
				r.mu.Unlock()
				if current {
					// Unknown check (404), or "does not have associated
					// TTL" (500): the agent forgot it.
					_ = r.register(r.ctx, reg)
				}
			}
			// Transport errors: keep renewing; the instance turns critical
			// on the agent's side only after the TTL.
		}
	}
}

// Deregister withdraws in; an unknown instance is not an error.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	id := serviceID(in)
	r.mu.Lock()
	delete(r.regs, id)
	r.mu.Unlock()
	if err := r.deregister(ctx, id); err != nil {
		return wrap(err, "consul registry: deregistering %v", in)
	}
	return nil
}

// health runs one health query of service (passing only). index 0 is a
// plain read; otherwise it blocks on the server up to the wait.
func (r *Registry) health(ctx context.Context, service string, index uint64) ([]spi.Instance, uint64, error) {
	q := &api.QueryOptions{Datacenter: r.datacenter, WaitIndex: index}
	if index > 0 {
		q.WaitTime = r.wait
	}
	entries, meta, err := r.client.Health().Service(service, "", true, q.WithContext(ctx))
	if err != nil {
		return nil, 0, err
	}
	return toInstances(service, entries), meta.LastIndex, nil
}

// toInstances converts health entries, sorted by address. Two entries of
// one address (the same instance on two agents) count once: the one
// changed last wins.
func toInstances(service string, entries []*api.ServiceEntry) []spi.Instance {
	byAddr := make(map[string]*api.ServiceEntry, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		addr := entryAddr(e)
		if old, ok := byAddr[addr]; !ok || e.Service.ModifyIndex > old.Service.ModifyIndex {
			byAddr[addr] = e
		}
	}
	list := make([]spi.Instance, 0, len(byAddr))
	for addr, e := range byAddr {
		list = append(list, toInstance(service, addr, e.Service))
	}
	registrykit.SortByAddr(list)
	return list
}

func entryAddr(e *api.ServiceEntry) string {
	host := e.Service.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address // Consul's rule: no service address means the node's
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
}

func toInstance(service, addr string, s *api.AgentService) spi.Instance {
	in := spi.Instance{Service: service, Addr: addr, Weight: s.Weights.Passing}
	if len(s.Tags) > 0 {
		in.Tags = append([]string(nil), s.Tags...)
	}
	var md map[string]string
	for k, v := range s.Meta {
		switch k {
		case MetaVersion:
			in.Version = v
		case MetaZone:
			in.Zone = v
		case MetaWeight:
			// Kite's exact weight holds while it still matches Consul's: an
			// operator who changes Weights.Passing is obeyed.
			if w, err := strconv.Atoi(v); err == nil && consulWeight(spi.Instance{Weight: w}.EffectiveWeight()) == s.Weights.Passing {
				in.Weight = w
			}
		default:
			if md == nil {
				md = make(map[string]string, len(s.Meta))
			}
			md[k] = v
		}
	}
	in.Metadata = md
	return in
}

// Resolve returns the instances of service whose checks all pass. When
// the agent cannot be reached it returns the last list this registry saw
// for service, if any.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	list, _, err := r.health(cctx, service, 0)
	if err != nil {
		err = wrap(err, "consul registry: resolving %q", service)
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
	r.remember(service, list)
	return list, nil
}

func (r *Registry) remember(service string, list []spi.Instance) {
	r.mu.Lock()
	r.lastKnown[service] = registrykit.CloneAll(list)
	r.mu.Unlock()
}

// Close ends every watch and the heartbeat and deregisters every instance
// registered through this registry.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	regs := r.regs
	r.regs = nil
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	r.cancel()
	<-r.beat
	for _, w := range ws {
		w.Stop()
	}
	var errs []error
	for id, reg := range regs {
		if err := r.deregister(context.Background(), id); err != nil {
			errs = append(errs, wrap(err, "consul registry: deregistering %s at %s:%d", reg.Name, reg.Address, reg.Port))
		}
	}
	r.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// wrap turns an API error into an spi error naming the operation.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var sErr *spi.Error
	if errors.As(err, &sErr) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	code := spi.Unavailable
	var se api.StatusError
	if errors.As(err, &se) {
		code = statusCode(se)
		body := se.Body
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		return spi.WrapError(code, err, format+": Consul answered HTTP %d: %s", append(args, se.Code, body)...)
	}
	if isDecodeError(err) {
		return spi.WrapError(spi.Unavailable, err, format+": the answer is not a Consul agent's (wrong address?): %v", append(args, err)...)
	}
	return spi.WrapError(code, err, format+": %v", append(args, err)...)
}

// isDecodeError reports whether err comes from reading an answer that is
// not Consul's: bad JSON, or headers a Consul agent always sets.
func isDecodeError(err error) bool {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	return errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "Failed to parse X-Consul-")
}

// statusCode maps a Consul HTTP status to a Kite code.
func statusCode(se api.StatusError) spi.Code {
	switch {
	case se.Code == http.StatusBadRequest:
		return spi.InvalidArgument
	case se.Code == http.StatusUnauthorized:
		return spi.Unauthenticated
	case se.Code == http.StatusForbidden:
		if strings.Contains(se.Body, "ACL not found") {
			return spi.Unauthenticated // the token itself is unknown
		}
		return spi.PermissionDenied
	case se.Code == http.StatusNotFound:
		return spi.NotFound
	case se.Code == http.StatusTooManyRequests:
		return spi.ResourceExhausted
	case se.Code >= 500:
		return spi.Unavailable
	}
	return spi.Unknown
}
