package zookeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "zk"

// Defaults.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultRoot           = "/kite"
	// FirstSessionGrace bounds how long an operation of a client that
	// never had a session waits for one (see rideThrough): long enough
	// for an ensemble's leader election (≈0.4 s measured with 3 members)
	// plus the client library's 1 s pause after trying every server.
	FirstSessionGrace = 3 * time.Second
)

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "ZooKeeper registry: ephemeral nodes, watches, session-expiry recovery",
		Schema: spi.Schema{
			{Name: "servers", Type: spi.TypeStringList, Required: true, Doc: `ZooKeeper servers, "host:port" (port 2181 if omitted)`},
			{Name: "session_timeout", Type: spi.TypeDuration, Doc: `session timeout (default "10s"); the server may clamp it`},
			{Name: "root", Type: spi.TypeString, Doc: `root znode (default "/kite"); instances live under <root>/services`},
			{Name: "username", Type: spi.TypeString, Doc: `digest user: the session authenticates as it and the nodes it creates get ACL digest:<username>:<hash> with every permission (default: no authentication, world-open nodes)`},
			{Name: "password", Type: spi.TypeString, Doc: `digest password, with username; write password = env("ZK_PASSWORD") to keep it out of the file. Never logged`},
			{Name: "world_read", Type: spi.TypeBool, Doc: `with username: anyone may read (discover) the nodes; false: only the same digest user (default true)`},
		},
		New: spi.FactoryOf(New),
	})
}

// Config is the registry's kite.hcl block.
type Config struct {
	Servers        []string `json:"servers"`
	SessionTimeout string   `json:"session_timeout,omitempty"`
	Root           string   `json:"root,omitempty"`
	// Username and Password turn on ZooKeeper digest authentication and
	// ACLs on the nodes the registry creates.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// WorldRead lets unauthenticated clients read the nodes (nil: true).
	WorldRead *bool `json:"world_read,omitempty"`

	// dialer replaces net.DialTimeout (tests route through a proxy).
	dialer zk.Dialer
}

// Registry is a ZooKeeper registry. It is safe for concurrent use.
type Registry struct {
	acl      []zk.ACL // of every node the registry creates
	who      string   // "digest user \"alice\"" or "no credentials", for errors
	authDone chan struct{}
	authErr  error    // AddAuth's result, read after authDone is closed
	checked  sync.Map // service node path → struct{}: its ACL was checked

	conn     *zk.Conn
	services string // <root>/services
	log      *slog.Logger
	timeout  time.Duration // session timeout asked for

	mu      sync.Mutex
	own     map[string]spi.Instance // znode path → instance registered through r
	closed  bool
	session int64         // id of the last session established
	connCh  chan struct{} // closed and replaced whenever a session is (re)established

	sessionEvt chan struct{} // capacity 1: a session was established
	done       chan struct{}
	wg         sync.WaitGroup
	expiries   atomic.Int64 // sessions lost and recovered from (for tests and metrics)
}

// New connects to ZooKeeper. The connection is established in the
// background; the first operation waits for it.
func New(c Config) (*Registry, error) {
	if len(c.Servers) == 0 {
		return nil, errors.New(`zk registry: servers is required, e.g. servers = ["127.0.0.1:2181"]`)
	}
	servers := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addr, why := checkServer(s)
		if why == "" {
			if j := slices.Index(servers[:i], addr); j >= 0 {
				why = fmt.Sprintf("the same server as servers[%d]", j)
			}
		}
		if why != "" {
			return nil, spi.FieldErrorf("servers", "zk registry: servers[%d] %q: %s", i, s, why)
		}
		servers[i] = addr
	}
	timeout := DefaultSessionTimeout
	if c.SessionTimeout != "" {
		d, err := time.ParseDuration(c.SessionTimeout)
		if err != nil {
			return nil, fmt.Errorf("zk registry: session_timeout: %w", err)
		}
		if d < 100*time.Millisecond {
			return nil, fmt.Errorf("zk registry: session_timeout %v is too short", d)
		}
		timeout = d
	}
	root := c.Root
	if root == "" {
		root = DefaultRoot
	}
	if err := checkRoot(root); err != nil {
		return nil, err
	}
	acl, who, err := aclOf(c)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		acl:        acl,
		who:        who,
		authDone:   make(chan struct{}),
		services:   strings.TrimSuffix(root, "/") + "/services",
		timeout:    timeout,
		log:        slog.Default().With("registry", "zk"),
		own:        map[string]spi.Instance{},
		connCh:     make(chan struct{}),
		sessionEvt: make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	dialer := c.dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	conn, _, err := zk.Connect(servers, timeout,
		zk.WithDialer(dialer),
		zk.WithLogger(zkLogger{r.log}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(r.onEvent),
	)
	if err != nil {
		// The client resolves every name here: one that does not resolve
		// fails now.
		return nil, spi.FieldErrorf("servers", "zk registry: %w", err)
	}
	r.conn = conn
	if c.Username == "" {
		close(r.authDone)
	} else {
		// AddAuth waits for a session; New does not. Operations wait for
		// it (awaitAuth), and the client library re-sends the credentials
		// on every reconnect before any other request.
		r.wg.Add(1)
		go r.addAuth([]byte(c.Username + ":" + c.Password))
	}
	r.wg.Add(1)
	go r.sessionLoop()
	return r, nil
}

// aclOf returns the ACL of the nodes a registry configured by c creates
// and how its errors name the client. The password never leaves here but
// as the SHA-1 digest ZooKeeper stores.
func aclOf(c Config) ([]zk.ACL, string, error) {
	if c.Username == "" {
		if c.Password != "" {
			return nil, "", spi.FieldErrorf("password", "zk registry: password is set but username is not; digest authentication needs both")
		}
		if c.WorldRead != nil {
			return nil, "", spi.FieldErrorf("world_read", "zk registry: world_read applies with username and password only (without them nodes are open to everyone)")
		}
		return zk.WorldACL(zk.PermAll), "no credentials", nil
	}
	if strings.Contains(c.Username, ":") {
		return nil, "", spi.FieldErrorf("username", "zk registry: username %q must not contain ':' (digest credentials are user:password)", c.Username)
	}
	if c.Password == "" {
		return nil, "", spi.FieldErrorf("username", "zk registry: username %q needs a password; write password = env(\"ZK_PASSWORD\") to keep it out of the file", c.Username)
	}
	acl := zk.DigestACL(zk.PermAll, c.Username, c.Password)
	if c.WorldRead == nil || *c.WorldRead {
		acl = append(acl, zk.WorldACL(zk.PermRead)...)
	}
	return acl, fmt.Sprintf("digest user %q", c.Username), nil
}

// addAuth adds the digest credentials to the session, retrying while
// the connection is not there yet (AddAuth is a request like any other).
func (r *Registry) addAuth(cred []byte) {
	defer r.wg.Done()
	defer close(r.authDone)
	backoff := 50 * time.Millisecond
	for {
		err := r.conn.AddAuth("digest", cred)
		if err == nil || !connectionLost(err) {
			r.authErr = err
			return
		}
		select {
		case <-r.done:
			r.authErr = zk.ErrClosing
			return
		case <-r.connected():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// awaitAuth blocks until the digest credentials are added to the session
// (at once without credentials), or the registry closes.
func (r *Registry) awaitAuth() error {
	select {
	case <-r.authDone:
		if r.authErr != nil {
			return fmt.Errorf("adding digest credentials: %w", r.authErr)
		}
		return nil
	case <-r.done:
		return zk.ErrClosing
	}
}

// checkServer returns a servers entry as the client library takes it,
// "host:port" (port DefaultPort when omitted), or what is wrong with it.
func checkServer(s string) (addr, why string) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "empty"
	case strings.Contains(s, "://") || strings.ContainsAny(s, "/ \t,"):
		return "", `want "host:port" or "host" (port 2181), one server per list element`
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return "", `want "host:port" (an IPv6 address in brackets: "[::1]:2181")`
		}
		host, port = s, strconv.Itoa(zk.DefaultPort)
	}
	if host == "" {
		return "", "no host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), ""
}

func checkRoot(root string) error {
	if !strings.HasPrefix(root, "/") || (len(root) > 1 && strings.HasSuffix(root, "/")) ||
		strings.Contains(root, "//") || strings.Contains(root+"/", "/./") || strings.Contains(root+"/", "/../") {
		return fmt.Errorf("zk registry: root %q must be an absolute znode path such as %q", root, DefaultRoot)
	}
	return nil
}

// zkLogger sends the client library's messages to slog at debug level:
// they repeat every second while a server is down, and the registry
// reports what matters itself.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) { z.l.Debug(fmt.Sprintf(format, args...)) }

// onEvent runs on the client's goroutine and must not block: it only
// pokes sessionLoop. It may run before New has stored r.conn, so it must
// not touch it.
func (r *Registry) onEvent(ev zk.Event) {
	if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
		select {
		case r.sessionEvt <- struct{}{}:
		default:
		}
	}
}

// connected returns a channel closed at the next session establishment.
func (r *Registry) connected() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connCh
}

// noteSession records the current session, wakes whoever waits for a
// connection, and reports whether the previous session was lost.
func (r *Registry) noteSession() (expired bool) {
	id := r.conn.SessionID()
	if id == 0 {
		return false
	}
	r.mu.Lock()
	prev := r.session
	r.session = id
	close(r.connCh)
	r.connCh = make(chan struct{})
	r.mu.Unlock()
	if prev == 0 || prev == id {
		return false
	}
	r.expiries.Add(1)
	r.log.Warn("ZooKeeper session expired; re-registering instances",
		"old_session", fmt.Sprintf("%#x", prev), "new_session", fmt.Sprintf("%#x", id))
	return true
}

// sessionLoop follows session establishments and, after an expiry (the
// old session took our ephemeral nodes with it), re-creates every node
// registered through r, retrying until all are back.
func (r *Registry) sessionLoop() {
	defer r.wg.Done()
	pending := false
	backoff := 100 * time.Millisecond
	var retry <-chan time.Time
	for {
		select {
		case <-r.done:
			return
		case <-r.sessionEvt:
			if r.noteSession() {
				pending, backoff = true, 100*time.Millisecond
			}
		case <-retry:
		}
		retry = nil
		if !pending {
			continue
		}
		if err := r.reRegister(); err != nil {
			r.log.Warn("re-registering after session expiry failed; retrying", "err", err, "in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		pending = false
	}
}

func (r *Registry) reRegister() error {
	r.mu.Lock()
	todo := maps.Clone(r.own)
	r.mu.Unlock()
	var errs []error
	for path, in := range todo {
		r.mu.Lock()
		cur, still := r.own[path]
		r.mu.Unlock()
		if !still || !registrykit.Same(cur, in) {
			continue // deregistered or re-registered meanwhile
		}
		if err := r.put(path, in); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Expiries returns how many times the session expired and was replaced.
func (r *Registry) Expiries() int64 { return r.expiries.Load() }

var errClosed = spi.Errorf(spi.FailedPrecondition, "zk registry: closed")

// call runs a blocking client operation, returning early when ctx is
// done (the operation itself finishes in the background: the client
// library takes no context).
func call[T any](ctx context.Context, op func() (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := op()
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// connectionLost reports whether err means the request met no
// connection, or lost it before the answer: what a leader change or the
// death of the member the client was connected to looks like, while the
// session itself may well be alive.
func connectionLost(err error) bool {
	var netErr net.Error
	return errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.As(err, &netErr) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// rideThrough runs op, and runs it again each time it fails because the
// connection was lost, as soon as the client has a session again (the
// client library moves to another member of the ensemble by itself): an
// ensemble electing a new leader, or losing the member this client was
// connected to, costs callers a delay instead of an error. op must be
// safe to repeat (put, delete and reads are: a try whose answer was lost
// is found done by the next one). It gives up — returning the last
// error, Unavailable once wrapped — when ctx ends, when the registry
// closes, or after the session timeout, by which time the session is
// gone anyway; a client that never had a session (a process starting
// while the ensemble elects, or whose servers are all down) waits at
// most FirstSessionGrace for its first.
func (r *Registry) rideThrough(ctx context.Context, op func() error) error {
	var giveUp time.Time
	backoff := 50 * time.Millisecond
	for {
		reconnected := r.connected()
		err := op()
		if err == nil || !connectionLost(err) {
			return err
		}
		r.mu.Lock()
		had, closed := r.session != 0, r.closed
		r.mu.Unlock()
		if closed {
			return err
		}
		if giveUp.IsZero() {
			wait := r.timeout
			if !had {
				wait = min(wait, FirstSessionGrace)
			}
			giveUp = time.Now().Add(wait)
		}
		left := time.Until(giveUp)
		if left <= 0 {
			return err
		}
		// The session event is the signal; the timer only covers a
		// reconnect that happened between op's failure and this wait.
		t := time.NewTimer(min(backoff, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-r.done:
			t.Stop()
			return err
		case <-reconnected:
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, time.Second)
	}
}

// wrap turns a client error into an spi error with a code callers can act on.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := fmt.Sprintf(format, args...) + ": " + err.Error()
	switch {
	// The library hands out raw I/O errors for requests in flight when
	// the connection drops (connectionLost knows them).
	case connectionLost(err), errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrSessionMoved):
		return spi.WrapError(spi.Unavailable, err, "zk registry: %s", msg)
	case errors.Is(err, zk.ErrClosing):
		return spi.WrapError(spi.FailedPrecondition, err, "zk registry: closed: %s", msg)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return spi.WrapError(spi.PermissionDenied, err, "zk registry: %s", msg)
	case errors.Is(err, zk.ErrInvalidPath), errors.Is(err, zk.ErrBadArguments):
		return spi.WrapError(spi.InvalidArgument, err, "zk registry: %s", msg)
	}
	return spi.WrapError(spi.Internal, err, "zk registry: %s", msg)
}

// wrap is wrap with the client's identity in a refusal: ZooKeeper's
// NoAuth names neither the node's owner nor what was missing.
func (r *Registry) wrap(err error, format string, args ...any) error {
	if errors.Is(err, zk.ErrNoAuth) {
		return spi.WrapError(spi.PermissionDenied, err,
			"zk registry: %s: ZooKeeper refused it (NoAuth): the znode's ACL does not allow this client (%s); nodes that a registry with username and password created can be changed only with the same credentials",
			fmt.Sprintf(format, args...), r.who)
	}
	return wrap(err, format, args...)
}

func (r *Registry) servicePath(service string) string { return r.services + "/" + escape(service) }

func (r *Registry) instancePath(in spi.Instance) string {
	return r.servicePath(in.Service) + "/" + escape(in.Addr)
}

// Register implements spi.Registry: it creates (or replaces) the
// instance's ephemeral node.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	if in.Service == "" || in.Addr == "" {
		return spi.Errorf(spi.InvalidArgument, "zk registry: register needs service and addr (got %q, %q)", in.Service, in.Addr)
	}
	in = registrykit.Clone(in)
	path := r.instancePath(in)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed
	}
	prev, had := r.own[path]
	// Recorded first, so that a session expiry during the create is
	// recovered from like any other.
	r.own[path] = in
	r.mu.Unlock()
	_, err := call(ctx, func() (struct{}, error) {
		return struct{}{}, r.rideThrough(ctx, func() error { return r.put(path, in) })
	})
	if err != nil {
		r.mu.Lock()
		if cur, ok := r.own[path]; ok && registrykit.Same(cur, in) {
			if had {
				r.own[path] = prev
			} else {
				delete(r.own, path)
			}
		}
		r.mu.Unlock()
		return r.wrap(err, "registering %s", in.Key())
	}
	return nil
}

// put makes the ephemeral node at path hold in, owned by our session.
func (r *Registry) put(path string, in spi.Instance) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if err := r.awaitAuth(); err != nil {
		return err
	}
	defer r.checkParentACL(path)
	acl := r.acl
	for attempt := 0; ; attempt++ {
		if attempt == 10 {
			return fmt.Errorf("creating %s: lost too many races with other clients", path)
		}
		_, err := r.conn.Create(path, data, zk.FlagEphemeral, acl)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := r.ensureParents(path); err != nil {
				return err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return err
		}
		// The node exists: ours (a re-register) is updated in place;
		// another session's (a restarted server) is replaced, since the
		// latest registration of an address is the one that counts.
		ok, stat, err := r.conn.Exists(path)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if stat.EphemeralOwner == r.conn.SessionID() {
			_, err = r.conn.Set(path, data, stat.Version)
			if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
				continue
			}
			return err
		}
		err = r.conn.Delete(path, stat.Version)
		if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
	}
}

// ensureParents creates the persistent ancestors of path.
func (r *Registry) ensureParents(path string) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := ""
	for _, p := range parts[:len(parts)-1] {
		cur += "/" + p
		_, err := r.conn.Create(cur, nil, 0, r.acl)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", cur, err)
		}
	}
	return nil
}

// checkParentACL warns, once per service, when the registry has
// credentials but the service node above an instance lets anyone create
// or delete children (it was created before, without credentials): in
// ZooKeeper deleting a node is a permission of its parent, so the
// instance nodes' own ACL does not stop others from removing them.
func (r *Registry) checkParentACL(path string) {
	if r.who == "no credentials" {
		return
	}
	parent := path[:strings.LastIndexByte(path, '/')]
	if _, done := r.checked.LoadOrStore(parent, struct{}{}); done {
		return
	}
	acl, _, err := r.conn.GetACL(parent)
	if err != nil {
		r.checked.Delete(parent)
		return
	}
	for _, a := range acl {
		if a.Scheme == "world" && a.Perms&(zk.PermDelete|zk.PermCreate) != 0 {
			r.log.Warn("service node is open to everyone: other clients can add or delete instances; set its ACL or use a root this registry creates",
				"node", parent, "acl", "world:anyone:"+permString(a.Perms))
			return
		}
	}
}

// permString writes perms as ZooKeeper's CLI does (cdrwa).
func permString(p int32) string {
	var b strings.Builder
	for _, f := range []struct {
		bit int32
		c   byte
	}{{zk.PermCreate, 'c'}, {zk.PermDelete, 'd'}, {zk.PermRead, 'r'}, {zk.PermWrite, 'w'}, {zk.PermAdmin, 'a'}} {
		if p&f.bit != 0 {
			b.WriteByte(f.c)
		}
	}
	return b.String()
}

// Deregister implements spi.Registry: it deletes the instance's node,
// whichever session created it.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if in.Service == "" || in.Addr == "" {
		return nil
	}
	path := r.instancePath(in)
	r.mu.Lock()
	delete(r.own, path)
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil // Close already withdrew everything
	}
	_, err := call(ctx, func() (struct{}, error) {
		return struct{}{}, r.rideThrough(ctx, func() error {
			if err := r.awaitAuth(); err != nil {
				return err
			}
			err := r.conn.Delete(path, -1)
			if errors.Is(err, zk.ErrNoNode) {
				err = nil // gone, also when a try that lost its answer deleted it
			}
			return err
		})
	})
	return r.wrap(err, "deregistering %s", in.Key())
}

// Resolve implements spi.Registry.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	return call(ctx, func() ([]spi.Instance, error) {
		var ins []spi.Instance
		err := r.rideThrough(ctx, func() (err error) {
			ins, err = r.list(service)
			return err
		})
		return ins, r.wrap(err, "resolving %q", service)
	})
}

// list reads the instances of service without watches.
func (r *Registry) list(service string) ([]spi.Instance, error) {
	if err := r.awaitAuth(); err != nil {
		return nil, err
	}
	dir := r.servicePath(service)
	children, _, err := r.conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]spi.Instance, 0, len(children))
	for _, child := range children {
		data, _, err := r.conn.Get(dir + "/" + child)
		if errors.Is(err, zk.ErrNoNode) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		in, ok := r.decode(service, child, data)
		if ok {
			out = append(out, in)
		}
	}
	registrykit.SortByAddr(out)
	return out, nil
}

// decode parses an instance node, skipping (with a log line) nodes that
// other software put there.
func (r *Registry) decode(service, child string, data []byte) (spi.Instance, bool) {
	var in spi.Instance
	if err := json.Unmarshal(data, &in); err != nil || in.Addr == "" {
		r.log.Debug("ignoring a znode that is not a Kite instance", "service", service, "node", child, "err", err)
		return in, false
	}
	in.Service = service
	return in, true
}

// Close implements spi.Registry: it ends the session, which makes
// ZooKeeper delete every ephemeral node of this client at once, and
// ends the watches.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	clear(r.own)
	r.mu.Unlock()
	close(r.done)
	r.conn.Close()
	r.wg.Wait()
	return nil
}

// escape maps a service name or address to a znode name: bytes outside
// [A-Za-z0-9_:@.-] and a leading dot become %XX (ZooKeeper forbids "/",
// "." and ".." as names, and some control and unicode ranges).
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == ':' || c == '@' || (c == '.' && i > 0) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var _ spi.Registry = (*Registry)(nil)
