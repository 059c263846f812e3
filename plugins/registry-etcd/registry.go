package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Name is the catalog name of this registry.
const Name = "etcd"

// Version is the plugin's version as shown by `kite plugins`.
const Version = "0.1.0"

// Defaults for the configuration knobs.
const (
	DefaultPrefix      = "/kite/services"
	DefaultTTL         = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Schema declares the kite.hcl block of the etcd registry.
var Schema = spi.Schema{
	{Name: "endpoints", Type: spi.TypeStringList, Required: true, Doc: `etcd client URLs or host:port, e.g. ["127.0.0.1:2379"]`},
	{Name: "ttl", Type: spi.TypeDuration, Doc: `lease time-to-live: how long a dead process's instances stay visible (default "10s", at least "2s")`},
	{Name: "dial_timeout", Type: spi.TypeDuration, Doc: `bound on connecting and on each background request (default "5s")`},
	{Name: "prefix", Type: spi.TypeString, Doc: `key prefix (default "/kite/services"; with layout = "kitex", "kitex/registry-etcd")`},
	{Name: "layout", Type: spi.TypeString, Doc: `"kite" (default) or "kitex": Kitex's keys and values (kitex-contrib/registry-etcd), so Kite and Kitex processes discover each other`},
	{Name: "username", Type: spi.TypeString, Doc: "etcd user, when authentication is enabled"},
	{Name: "password", Type: spi.TypeString, Doc: "etcd password, when authentication is enabled"},
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: Version,
		Doc:     "etcd registry: instances as keys on a kept-alive lease, watched by prefix",
		Schema:  Schema,
		New:     spi.FactoryOf(New),
	})
}

// Config is the decoded kite.hcl block.
type Config struct {
	Endpoints   []string `json:"endpoints"`
	TTL         string   `json:"ttl,omitempty"`
	DialTimeout string   `json:"dial_timeout,omitempty"`
	Prefix      string   `json:"prefix,omitempty"`
	Layout      string   `json:"layout,omitempty"`
	Username    string   `json:"username,omitempty"`
	Password    string   `json:"password,omitempty"`

	// Logger receives the etcd client's log, levels lowered one step
	// (see newZapLogger); nil means hclog.Default(), which a kite.hcl's
	// log block (or stack.WithLogger) sets.
	Logger hclog.Logger `json:"-"`
}

// options is Config checked and with defaults applied.
type options struct {
	endpoints   []string
	ttl         time.Duration
	dialTimeout time.Duration
	prefix      string
	layout      string
	username    string
	password    string
	log         hclog.Logger
}

func (c Config) options() (options, error) {
	o := options{
		endpoints:   c.Endpoints,
		ttl:         DefaultTTL,
		dialTimeout: DefaultDialTimeout,
		prefix:      DefaultPrefix,
		layout:      LayoutKite,
		username:    c.Username,
		password:    c.Password,
		log:         c.Logger,
	}
	if o.log == nil {
		o.log = hclog.Default()
	}
	o.log = o.log.Named("etcd")
	if len(o.endpoints) == 0 {
		return o, errors.New(`etcd registry: endpoints is required, e.g. endpoints = ["127.0.0.1:2379"]`)
	}
	for i, e := range o.endpoints {
		if why := checkEndpoint(e); why != "" {
			return o, spi.FieldErrorf("endpoints", "etcd registry: endpoints[%d] %q: %s", i, e, why)
		}
	}
	var err error
	if c.TTL != "" {
		if o.ttl, err = time.ParseDuration(c.TTL); err != nil {
			return o, spi.FieldErrorf("ttl", "etcd registry: ttl: %w", err)
		}
		// etcd leases have whole-second TTLs and the server raises
		// anything below its minimum (about 2s with default timing).
		if o.ttl < 2*time.Second {
			return o, spi.FieldErrorf("ttl", "etcd registry: ttl %v is below the 2s minimum etcd grants", o.ttl)
		}
	}
	if c.DialTimeout != "" {
		if o.dialTimeout, err = time.ParseDuration(c.DialTimeout); err != nil {
			return o, spi.FieldErrorf("dial_timeout", "etcd registry: dial_timeout: %w", err)
		}
		if o.dialTimeout <= 0 {
			return o, spi.FieldErrorf("dial_timeout", "etcd registry: dial_timeout must be positive")
		}
	}
	switch c.Layout {
	case "", LayoutKite:
	case LayoutKitex:
		// Kitex writes its prefix as given, without a leading slash by
		// default; so does this layout.
		o.layout, o.prefix = LayoutKitex, DefaultKitexPrefix
		if c.Prefix != "" {
			o.prefix = strings.TrimSuffix(c.Prefix, "/")
		}
	default:
		return o, spi.FieldErrorf("layout", "etcd registry: layout %q is not one of \"kite\", \"kitex\"", c.Layout)
	}
	if c.Prefix != "" && o.layout == LayoutKite {
		o.prefix = "/" + strings.Trim(c.Prefix, "/")
	}
	if (o.username == "") != (o.password == "") {
		return o, errors.New("etcd registry: username and password go together")
	}
	return o, nil
}

// checkEndpoint says what is wrong with an endpoint ("" when nothing):
// "host:port", or a URL http://host:port, https://host:port,
// unix://path or unixs://path, as etcd's client takes them. A port is
// required: the client would otherwise dial port 443 or fail at the
// first request instead of at startup.
func checkEndpoint(e string) string {
	e = strings.TrimSpace(e)
	if e == "" {
		return "empty"
	}
	hostport := e
	if scheme, rest, ok := strings.Cut(e, "://"); ok {
		switch scheme {
		case "unix", "unixs":
			if rest == "" {
				return "no socket path after " + scheme + "://"
			}
			return ""
		case "http", "https":
		default:
			return fmt.Sprintf("scheme %q is not http, https, unix or unixs", scheme)
		}
		u, err := url.Parse(e)
		if err != nil {
			return err.Error()
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return "an endpoint is scheme://host:port, without user, path or query"
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return `want "host:port" (e.g. "127.0.0.1:2379") or "http://host:port"`
	}
	if host == "" {
		return "no host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}

// Registry is an spi.Registry backed by etcd.
type Registry struct {
	opts options
	cli  *clientv3.Client

	// ctx is cancelled by Close; every goroutine of the registry ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// leaseMu serialises everything that touches the lease and the set of
	// registrations, so that a re-grant never races a Register.
	leaseMu sync.Mutex
	lease   clientv3.LeaseID  // 0 until the first Register or after loss
	regs    map[string]string // key -> instance JSON
	kaStop  context.CancelFunc
	// leaseLost is signalled by a keepalive goroutine when its lease ended.
	leaseLost chan clientv3.LeaseID

	mu       sync.Mutex
	closed   bool
	watchers map[*watcher]struct{}
	// lastKnown holds the last list seen per service, answered by
	// Resolve while etcd is unreachable.
	lastKnown map[string][]spi.Instance
}

var _ spi.Registry = (*Registry)(nil)

// New connects to etcd. It does not wait for the cluster to answer, so a
// process starts even while etcd is down; registrations and watches
// proceed once it is reachable.
func New(c Config) (*Registry, error) {
	o, err := c.options()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.endpoints,
		DialTimeout:          o.dialTimeout,
		DialKeepAliveTime:    o.ttl / 2,
		DialKeepAliveTimeout: o.dialTimeout,
		Username:             o.username,
		Password:             o.password,
		Logger:               newZapLogger(o.log),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd registry: connecting to %v: %w", o.endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		opts:      o,
		cli:       cli,
		ctx:       ctx,
		cancel:    cancel,
		regs:      make(map[string]string),
		leaseLost: make(chan clientv3.LeaseID, 1),
		watchers:  make(map[*watcher]struct{}),
		lastKnown: make(map[string][]spi.Instance),
	}
	r.wg.Add(1)
	go r.maintainLease()
	return r, nil
}

func (r *Registry) servicePrefix(service string) string {
	return r.opts.prefix + "/" + service + "/"
}

func (r *Registry) key(in spi.Instance) string {
	if r.opts.layout == LayoutKitex {
		_, addr := kitexAddr(in.Addr)
		return r.servicePrefix(in.Service) + addr
	}
	return r.servicePrefix(in.Service) + in.Addr
}

func checkService(service string) error {
	if service == "" {
		return spi.Errorf(spi.InvalidArgument, "etcd registry: empty service name")
	}
	// A "/" would make one service's prefix a parent of another's.
	if strings.Contains(service, "/") {
		return spi.Errorf(spi.InvalidArgument, "etcd registry: service name %q contains '/'", service)
	}
	return nil
}

func checkInstance(in spi.Instance) error {
	if err := checkService(in.Service); err != nil {
		return err
	}
	if in.Addr == "" {
		return spi.Errorf(spi.InvalidArgument, "etcd registry: instance of %q has no address", in.Service)
	}
	return nil
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// bind returns ctx, also cancelled when the registry closes, so that a
// request stuck on an unreachable etcd cannot hold up Close.
func (r *Registry) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// unavailable wraps an etcd failure as the Unavailable code, keeping a
// context error's own code.
func unavailable(err error, format string, args ...any) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return spi.WrapError(spi.Unavailable, err, format+": %v", append(args, err)...)
}

// transient reports whether err is a failure that a retry, a moment
// later, may not meet: the cluster is electing a leader, lost the
// member that had the request, or timed a proposal out because of that.
// etcd's client retries such failures of reads itself but hands them
// out for writes, which it cannot know to be safe to repeat.
func transient(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrTimeoutWaitAppliedIndex),
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrNotLeader),
		errors.Is(err, rpctypes.ErrLeaderChanged), errors.Is(err, rpctypes.ErrStopped),
		errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrTooManyRequests):
		return true
	}
	return status.Code(err) == codes.Unavailable
}

// attemptTimeout bounds one try of a write. A proposal that a follower
// forwarded to a leader that then died is answered only after etcd's
// request timeout (5 s + 2 × the election timeout: 7 s with defaults);
// measured in tests/cluster/ensemble, a Register made as the leader was
// killed took 7.1 s that way. A try abandoned after 2 s and sent again
// reaches the new leader instead (an abandoned write may still apply:
// the writes are safe to repeat).
const attemptTimeout = 2 * time.Second

// retryTransient runs op until it succeeds, fails for good or ctx ends:
// the registry's writes (put and delete of a key, lease grant) are safe
// to repeat, so a leader change or a dead member costs a caller a delay
// instead of an error. While quorum is lost this retries until ctx ends,
// as etcd's client does for reads.
func retryTransient(ctx context.Context, op func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		abandoned := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || ctx.Err() != nil || !(abandoned || transient(err)) {
			return err
		}
		if !sleepCtx(ctx, backoff) {
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Register writes in under the registry's lease, granting the lease first
// if there is none yet.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	if err := checkInstance(in); err != nil {
		return err
	}
	if r.isClosed() {
		return spi.Errorf(spi.FailedPrecondition, "etcd registry: closed")
	}
	val, err := r.encode(in)
	if err != nil {
		return fmt.Errorf("etcd registry: encoding %v: %w", in, err)
	}
	key := r.key(in)
	ctx, cancel := r.bind(ctx)
	defer cancel()
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	if r.lease == 0 {
		if err := r.grantLocked(ctx); err != nil {
			return err
		}
	}
	put := func(ctx context.Context) error {
		_, err := r.cli.Put(ctx, key, string(val), clientv3.WithLease(r.lease))
		return err
	}
	err = retryTransient(ctx, put)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The lease ended before the keepalive goroutine noticed: start
		// over with a new one, which rewrites the others too.
		r.dropLeaseLocked()
		if err = r.grantLocked(ctx); err == nil {
			err = retryTransient(ctx, put)
		}
	}
	if err != nil {
		return unavailable(err, "etcd registry: registering %v", in)
	}
	r.regs[key] = string(val)
	return nil
}

// Deregister deletes in's key; an unknown instance is not an error.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := checkInstance(in); err != nil {
		return err
	}
	key := r.key(in)
	ctx, cancel := r.bind(ctx)
	defer cancel()
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	// Forget it first: even if the delete fails, the lease must not bring
	// it back on the next re-grant.
	delete(r.regs, key)
	err := retryTransient(ctx, func(ctx context.Context) error {
		_, err := r.cli.Delete(ctx, key)
		return err
	})
	if err != nil {
		return unavailable(err, "etcd registry: deregistering %v", in)
	}
	return nil
}

// grantLocked grants a new lease, starts keeping it alive and writes every
// registration under it. leaseMu must be held.
func (r *Registry) grantLocked(ctx context.Context) error {
	ttlSec := int64((r.opts.ttl + time.Second - 1) / time.Second)
	var resp *clientv3.LeaseGrantResponse
	err := retryTransient(ctx, func(ctx context.Context) (err error) {
		// A grant whose answer was lost leaves a lease nobody keeps
		// alive: it expires after ttl, holding no key.
		resp, err = r.cli.Grant(ctx, ttlSec)
		return err
	})
	if err != nil {
		return unavailable(err, "etcd registry: granting a %ds lease", ttlSec)
	}
	id := resp.ID
	kaCtx, kaStop := context.WithCancel(r.ctx)
	ch, err := r.cli.KeepAlive(kaCtx, id)
	if err != nil {
		kaStop()
		r.revokeQuietly(id)
		return unavailable(err, "etcd registry: keeping lease %x alive", id)
	}
	for key, val := range r.regs {
		err := retryTransient(ctx, func(ctx context.Context) error {
			_, err := r.cli.Put(ctx, key, val, clientv3.WithLease(id))
			return err
		})
		if err != nil {
			kaStop()
			r.revokeQuietly(id)
			return unavailable(err, "etcd registry: re-registering %s", key)
		}
	}
	r.lease, r.kaStop = id, kaStop
	r.wg.Add(1)
	go r.drainKeepAlive(id, ch)
	return nil
}

// dropLeaseLocked forgets the current lease (it is gone or about to be).
func (r *Registry) dropLeaseLocked() {
	if r.kaStop != nil {
		r.kaStop()
	}
	r.lease, r.kaStop = 0, nil
}

func (r *Registry) revokeQuietly(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.dialTimeout)
	defer cancel()
	_, _ = r.cli.Revoke(ctx, id)
}

// drainKeepAlive consumes keepalive responses (the client requires it)
// and reports the lease as lost when the channel closes, which the
// client does when the lease expired, was revoked, or got no answer
// within its TTL.
func (r *Registry) drainKeepAlive(id clientv3.LeaseID, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	defer r.wg.Done()
	for range ch {
	}
	if r.ctx.Err() != nil {
		return
	}
	select {
	case r.leaseLost <- id:
	case <-r.ctx.Done():
	}
}

// maintainLease re-grants and re-registers after a lease loss, retrying
// with backoff while etcd is unreachable.
func (r *Registry) maintainLease() {
	defer r.wg.Done()
	for {
		var lost clientv3.LeaseID
		select {
		case <-r.ctx.Done():
			return
		case lost = <-r.leaseLost:
		}
		backoff := 100 * time.Millisecond
		for {
			done := r.recoverLease(lost)
			if done {
				break
			}
			t := time.NewTimer(backoff)
			select {
			case <-r.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// At most a quarter of the TTL apart: after a quorum loss
			// longer than the TTL, etcd's new leader renews the old lease
			// for one TTL, so the re-grant and re-put must come well
			// within that, and a slow retry would also hold leaseMu (and
			// with it Register and Deregister) into the next disturbance.
			backoff = min(backoff*2, r.opts.ttl/4)
		}
	}
}

// recoverLease replaces the lost lease; it reports whether nothing more
// needs doing.
func (r *Registry) recoverLease(lost clientv3.LeaseID) bool {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	if r.lease != lost && r.lease != 0 {
		return true // a Register already replaced it
	}
	if r.lease == lost {
		r.dropLeaseLocked()
	}
	if len(r.regs) == 0 {
		return true // nothing to keep alive; the next Register grants
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.dialTimeout)
	defer cancel()
	return r.grantLocked(ctx) == nil
}

// Resolve lists the instances of service. When etcd cannot be reached
// (within dial_timeout or ctx) it returns the last list this registry saw
// for service, if it saw one, so callers keep serving known instances.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	list, _, err := r.list(ctx, service)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
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

// list reads the service's keys and returns the sorted instances and the
// revision they were read at. It waits at most dial_timeout: etcd's client
// retries reads against a dead cluster until its context ends.
func (r *Registry) list(ctx context.Context, service string) ([]spi.Instance, int64, error) {
	lctx, cancel := context.WithTimeout(ctx, r.opts.dialTimeout)
	defer cancel()
	resp, err := r.cli.Get(lctx, r.servicePrefix(service), clientv3.WithPrefix())
	if err != nil {
		if ctx.Err() == nil && lctx.Err() != nil {
			return nil, 0, spi.WrapError(spi.Unavailable, err, "etcd registry: listing %q: no answer from %v within %v", service, r.opts.endpoints, r.opts.dialTimeout)
		}
		return nil, 0, unavailable(err, "etcd registry: listing %q", service)
	}
	byAddr := make(map[string]spi.Instance, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if in, ok := r.decode(service, kv.Value); ok {
			byAddr[string(kv.Key)] = in
		}
	}
	list := sortedInstances(byAddr)
	r.remember(service, list)
	return list, resp.Header.Revision, nil
}

func (r *Registry) remember(service string, list []spi.Instance) {
	r.mu.Lock()
	r.lastKnown[service] = registrykit.CloneAll(list)
	r.mu.Unlock()
}

// decodeInstance parses a stored value, skipping foreign or broken ones
// so one bad key cannot hide a whole service.
func decodeInstance(service string, val []byte) (spi.Instance, bool) {
	var in spi.Instance
	if err := json.Unmarshal(val, &in); err != nil || in.Addr == "" {
		return in, false
	}
	if in.Service == "" {
		in.Service = service
	}
	return in, in.Service == service
}

func sortedInstances(m map[string]spi.Instance) []spi.Instance {
	list := make([]spi.Instance, 0, len(m))
	for _, in := range m {
		list = append(list, in)
	}
	registrykit.SortByAddr(list)
	return list
}

// Close revokes the lease (withdrawing every registration at once), stops
// all watchers and closes the client.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	// Cancelling first unblocks a Register waiting on etcd (it holds
	// leaseMu) and ends keepalives and watches; the revoke below uses a
	// context of its own.
	r.cancel()
	for _, w := range ws {
		w.Stop()
	}

	var err error
	r.leaseMu.Lock()
	if r.lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.dialTimeout)
		if _, rerr := r.cli.Revoke(ctx, r.lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			err = unavailable(rerr, "etcd registry: revoking lease %x", r.lease)
		}
		cancel()
	}
	r.dropLeaseLocked()
	r.regs = make(map[string]string)
	r.leaseMu.Unlock()

	r.wg.Wait()
	if cerr := r.cli.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = fmt.Errorf("etcd registry: closing client: %w", cerr)
	}
	return err
}
