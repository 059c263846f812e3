package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

// Decl declares an out-of-process plugin, as a kite.hcl block does:
//
//	plugin "registry" "nacos" {
//	  path   = "./bin/kite-registry-nacos"
//	  sha256 = "…"
//	}
type Decl struct {
	Kind spi.Kind
	Name string
	// Path is the plugin executable.
	Path string
	// SHA256 is the hex SHA-256 of the executable (as printed by
	// sha256sum). It is required: a binary whose sum differs is refused
	// and never started.
	SHA256 string
	// Args are extra command-line arguments; Env extra "KEY=value"
	// environment entries (the host's environment is inherited).
	Args []string
	Env  []string
	// Files are further files the plugin runs, each with the hex SHA-256
	// it must have: the script an interpreter at Path runs, and the
	// modules it imports, for a plugin written in Python or Node. Like
	// the executable, every file is checked before each start and
	// restart, and a plugin whose file differs is refused, never started.
	Files []FileSum
	// StartTimeout bounds the start and handshake; 0 means 10 s (or the
	// deadline of Load's context if sooner).
	StartTimeout time.Duration
	// NoFilterChannel makes a filter plugin's calls use the gRPC Filter
	// service even when the plugin offers the filter channel (see
	// docs/PLUGINS.md): for comparing the two, or to get around a
	// problem with the channel.
	NoFilterChannel bool
}

// FileSum is a file and the hex SHA-256 it must have.
type FileSum struct {
	Path   string
	SHA256 string
}

func (d Decl) String() string {
	if len(d.Files) > 0 {
		// An interpreter: name what it runs too.
		return fmt.Sprintf("plugin %s/%s (%s)", d.Kind, d.Name, strings.Join(append([]string{d.Path}, d.Args...), " "))
	}
	return fmt.Sprintf("plugin %s/%s (%s)", d.Kind, d.Name, d.Path)
}

// Timings of the supervisor. Variables so tests can shorten them.
var (
	restartMinBackoff = 100 * time.Millisecond
	restartMaxBackoff = 30 * time.Second
	// A process that lived this long resets the backoff when it dies.
	healthyAfter = 30 * time.Second
	exitPoll     = 20 * time.Millisecond
	// callTimeout bounds calls whose SPI method takes no context
	// (codec, compressor, Balancer.Build, factories).
	callTimeout = 10 * time.Second
	// restartHook, when set (by tests), runs before each restart attempt,
	// so a test can observe the plugin while it is down.
	restartHook func()
)

// Process is a running out-of-process plugin: one executable, supervised.
// When it exits unexpectedly, calls in flight and new calls fail with an
// Unavailable *spi.Error naming the plugin, the supervisor starts it again
// with exponential backoff, configures every live implementation again,
// re-registers instances and reopens watches.
type Process struct {
	decl   Decl
	path   string // resolved executable
	sum    []byte
	logger hclog.Logger
	info   *pb.InfoResponse

	mu       sync.Mutex
	gen      *generation // nil while restarting
	ready    chan struct{}
	lastExit string
	restarts int
	closed   bool
	handles  map[uint64]*handle
	nextH    uint64

	kickc chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
}

// generation is one run of the plugin executable.
type generation struct {
	client  *goplugin.Client
	cmd     *exec.Cmd
	rpc     *clients
	started time.Time
	exited  chan struct{} // closed once reason is set
	reason  string
	// fchan is the filter channel of a filter plugin that offers one
	// (nil: filter calls use the gRPC Filter service; set to nil when
	// the channel breaks while the process lives on); chanDir is the
	// private directory of its socket.
	fchan atomic.Pointer[filterChan]
	// chanOpened is the channel opened at the start, closed by stop.
	chanOpened *filterChan
	chanDir    string
}

// stop ends the generation: its filter channel, its go-plugin client
// (the process, if still running) and the sockets it leaves behind.
func (g *generation) stop() {
	if g.chanOpened != nil {
		g.chanOpened.close()
	}
	stopClient(g.client)
	removeChannelDir(g.chanDir)
}

// removeChannelDir removes the private directory of a filter channel's
// socket, which a plugin removes itself when it exits cleanly but not
// when it is killed: only a directory in the temp directory named like
// one (channelDirPrefix + digits), holding nothing but the socket.
func removeChannelDir(dir string) {
	if dir == "" || filepath.Dir(dir) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(dir), channelDirPrefix) {
		return
	}
	sock := filepath.Join(dir, "s")
	if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(sock)
	}
	_ = os.Remove(dir) // fails, harmlessly, if anything else is in it
}

func (g *generation) pid() int {
	if g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// handle is one implementation configured in the plugin.
type handle struct {
	id     uint64
	config spi.Config
	// replay runs after the handle was configured again in a restarted
	// plugin (re-register instances, rebuild stale picking tables).
	replay func(ctx context.Context, c *clients) error
}

var live struct {
	sync.Mutex
	procs map[*Process]struct{}
}

// Load starts the plugin executable declared by d, verifies its checksum
// and handshake, checks that it serves d.Kind, and returns a catalog entry
// for it: the entry's factory configures an implementation in the plugin
// with the JSON configuration and returns a host-side adapter that
// implements the kind's spi interface, so the core cannot tell it from a
// compiled-in one. The Process must be closed when the host is done.
func Load(ctx context.Context, d Decl, logger hclog.Logger) (spi.Entry, *Process, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if d.Kind == "" || d.Name == "" || d.Path == "" {
		return spi.Entry{}, nil, fmt.Errorf("plugin declaration needs kind, name and path (got %q/%q at %q)", d.Kind, d.Name, d.Path)
	}
	switch d.Kind {
	case spi.KindCodec, spi.KindCompressor, spi.KindRegistry, spi.KindBalancer, spi.KindFilter:
	case spi.KindTransport:
		return spi.Entry{}, nil, fmt.Errorf("%s: transports cannot run out of process (they sit on every byte of every call); compile them in", d)
	default:
		return spi.Entry{}, nil, fmt.Errorf("%s: unknown plugin kind %q (want codec, compressor, registry, balancer or filter)", d, d.Kind)
	}
	path, err := resolvePath(d.Path)
	if err != nil {
		return spi.Entry{}, nil, &DeclError{Field: "path", Err: fmt.Errorf("%s: %w", d, err)}
	}
	sum, err := verifySum(d, path)
	if err != nil {
		return spi.Entry{}, nil, err
	}
	for i, f := range d.Files {
		if d.Files[i].Path, err = filepath.Abs(f.Path); err != nil {
			return spi.Entry{}, nil, fmt.Errorf("%s: %w", d, err)
		}
	}
	p := &Process{
		decl:    d,
		path:    path,
		sum:     sum,
		logger:  logger.Named(string(d.Kind) + "." + d.Name),
		handles: make(map[uint64]*handle),
		kickc:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	timeout := d.StartTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	g, err := p.start(timeout)
	if err != nil {
		return spi.Entry{}, nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, timeout)
	info, err := g.rpc.plugin.Info(ictx, &pb.Empty{})
	cancel()
	if err == nil && info.Kind != string(d.Kind) {
		err = fmt.Errorf("it serves a %s, not a %s", info.Kind, d.Kind)
	}
	if err != nil {
		g.stop()
		return spi.Entry{}, nil, fmt.Errorf("%s: %w", d, err)
	}
	if info.Name != d.Name {
		p.logger.Debug("plugin serves another name; using the declared one", "declared", d.Name, "served", info.Name)
	}
	p.info = info
	p.gen = g
	live.Lock()
	if live.procs == nil {
		live.procs = make(map[*Process]struct{})
	}
	live.procs[p] = struct{}{}
	live.Unlock()
	p.wg.Add(1)
	go p.supervise(g)

	schema := make(spi.Schema, len(info.Schema))
	for i, f := range info.Schema {
		schema[i] = spi.Field{Name: f.Name, Type: spi.FieldType(f.Type), Required: f.Required, Doc: f.Doc}
	}
	e := spi.Entry{
		Kind:    d.Kind,
		Name:    d.Name,
		Version: info.Version,
		Doc:     info.Doc,
		Schema:  schema,
		Source:  d.Path,
		New:     p.build,
	}
	return e, p, nil
}

// Shutdown closes every loaded plugin process. Hosts call it on exit (the
// parent-death signal covers exits that run no code, on Linux).
func Shutdown() {
	live.Lock()
	ps := make([]*Process, 0, len(live.procs))
	for p := range live.procs {
		ps = append(ps, p)
	}
	live.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
}

func resolvePath(p string) (string, error) {
	if !strings.ContainsRune(p, filepath.Separator) {
		return exec.LookPath(p)
	}
	return filepath.Abs(p)
}

func verifySum(d Decl, path string) ([]byte, error) {
	return checkSum(d, d.Path, path, d.SHA256, "binary")
}

// checkSum hashes the file at path (declared as name) and compares it
// with the declared hex sum.
func checkSum(d Decl, name, path, sum, what string) ([]byte, error) {
	// The attributes at fault, for DeclError: the binary's path and
	// sha256, or the files map.
	fileAttr, sumAttr := "path", "sha256"
	if what != "binary" {
		fileAttr, sumAttr = "files", "files"
	}
	want := strings.ToLower(strings.TrimSpace(sum))
	if want == "" {
		if what == "binary" {
			return nil, &DeclError{Field: sumAttr, Err: fmt.Errorf("%s: sha256 is required; compute it with `sha256sum %s`", d, name)}
		}
		return nil, &DeclError{Field: sumAttr, Err: fmt.Errorf("%s: sha256 of %s is required; compute it with `sha256sum %s`", d, name, name)}
	}
	wantRaw, err := hex.DecodeString(want)
	if err != nil || len(wantRaw) != sha256.Size {
		return nil, &DeclError{Field: sumAttr, Err: fmt.Errorf("%s: sha256 %q of %s is not 64 hex digits; compute it with `sha256sum %s`", d, sum, name, name)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &DeclError{Field: fileAttr, Err: fmt.Errorf("%s: %w", d, err)}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, &DeclError{Field: fileAttr, Err: fmt.Errorf("%s: reading %s: %w", d, path, err)}
	}
	got := h.Sum(nil)
	if hex.EncodeToString(got) != want {
		return nil, &DeclError{Field: sumAttr, Err: fmt.Errorf("%s: refusing to start %s: its sha256 is %x but the declaration expects %s (rebuilt or replaced %s? recompute with `sha256sum %s`)",
			d, path, got, want, what, name)}
	}
	return wantRaw, nil
}

// DeclError is a load error caused by one field of the declaration:
// "path" (the executable is missing or unreadable), "sha256" (missing,
// malformed or not the executable's) or "files". A host that knows where
// the declaration came from points at that field.
type DeclError struct {
	Field string
	Err   error
}

func (e *DeclError) Error() string { return e.Err.Error() }
func (e *DeclError) Unwrap() error { return e.Err }

// verifyFiles checks the declared files an interpreter runs; called
// before every start, as go-plugin checks the executable itself.
func verifyFiles(d Decl) error {
	for _, f := range d.Files {
		if _, err := checkSum(d, f.Path, f.Path, f.SHA256, "file"); err != nil {
			return err
		}
	}
	return nil
}

// spawn runs fn on one OS thread that stays locked for the life of the
// process. Linux delivers the parent-death signal when the *thread* that
// forked the child exits, and the Go runtime ends a thread when a locked
// goroutine returns; starting plugins from a thread that never ends makes
// the signal mean "the host process died".
var spawnc = sync.OnceValue(func() chan func() {
	c := make(chan func())
	go spawnLoop(c)
	return c
})

func spawnLoop(c chan func()) {
	runtime.LockOSThread() // never unlocked, on purpose
	for fn := range c {
		fn()
	}
}

func spawn(fn func()) {
	done := make(chan struct{})
	spawnc() <- func() { defer close(done); fn() }
	<-done
}

// start runs the executable once and completes the handshake.
func (p *Process) start(timeout time.Duration) (*generation, error) {
	if err := verifyFiles(p.decl); err != nil {
		return nil, err
	}
	cmd := exec.Command(p.path, p.decl.Args...)
	// The host's environment, then the declaration's (which wins for a
	// key set in both: exec keeps the last value of a key), then
	// go-plugin's handshake variables. go-plugin would put the host's
	// environment after the declaration's.
	cmd.Env = append(os.Environ(), p.decl.Env...)
	setDeathSignal(cmd)
	stderr := &tailWriter{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSet(nil),
		Cmd:              cmd,
		// Checked again by go-plugin right before exec, so a binary swapped
		// after Load's check is refused on restart too.
		SecureConfig:     &goplugin.SecureConfig{Checksum: p.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true, // added above, before the declaration's
		Managed:          true,
		StartTimeout:     timeout,
		Logger:           signalExitInfo{p.logger},
		Stderr:           stderr,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize))},
	})
	var rpcc goplugin.ClientProtocol
	var err error
	spawn(func() { rpcc, err = client.Client() })
	if err != nil {
		stopClient(client)
		if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
			return nil, &DeclError{Field: "sha256", Err: fmt.Errorf("%s: refusing to start %s: its sha256 no longer matches %x", p.decl, p.path, p.sum)}
		}
		return nil, fmt.Errorf("%s: starting: %s%w%s", p.decl, startHint(err, timeout), err, stderr.tail())
	}
	raw, err := rpcc.Dispense(pluginName)
	if err != nil {
		stopClient(client)
		return nil, fmt.Errorf("%s: %w", p.decl, err)
	}
	g := &generation{client: client, cmd: cmd, rpc: raw.(*clients), started: time.Now(), exited: make(chan struct{})}
	if p.decl.Kind == spi.KindFilter {
		p.openChannel(g, timeout)
	}
	p.logger.Debug("plugin started", "path", p.path, "pid", g.pid(), "protocol", client.NegotiatedVersion(), "filter_channel", g.fchan.Load() != nil)
	return g, nil
}

// openChannel connects g to the filter channel the plugin offers in
// Info, if any. A plugin that offers none (an older SDK, another
// language), whose channel cannot be reached, or declared with
// NoFilterChannel is served on gRPC. The socket's directory is noted
// either way, to be removed if the plugin is killed.
func (p *Process) openChannel(g *generation, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	info, err := g.rpc.plugin.Info(ctx, &pb.Empty{})
	cancel()
	if err != nil || info.GetFilterChannel() == nil {
		return // Load reports a failing Info
	}
	ch := info.GetFilterChannel()
	if dir := filepath.Dir(ch.GetAddress()); strings.HasPrefix(filepath.Base(dir), channelDirPrefix) {
		g.chanDir = dir
	}
	if p.decl.NoFilterChannel {
		return
	}
	fc, err := dialFilterChan(ch)
	if err != nil {
		p.logger.Warn("filter channel unavailable; calling the filter over gRPC", "address", ch.GetAddress(), "error", err)
		return
	}
	g.chanOpened = fc
	g.fchan.Store(fc)
}

// signalExitInfo is the logger go-plugin gets: its "plugin process
// exited" line for a plugin stopped by SIGTERM or SIGINT is information,
// not an ERROR (see supervise); everything else passes through.
type signalExitInfo struct{ hclog.Logger }

func (l signalExitInfo) Error(msg string, args ...any) {
	if msg == "plugin process exited" {
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] == "error" && (args[i+1] == "signal: terminated" || args[i+1] == "signal: interrupt") {
				l.Logger.Info(msg, args...)
				return
			}
		}
	}
	l.Logger.Error(msg, args...)
}

// stoppedBySignal reports whether the process ended on SIGTERM or SIGINT
// (the polite stop signals), as opposed to a crash or a kill.
func stoppedBySignal(ps *os.ProcessState) bool {
	if ps == nil {
		return false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT)
}

// stopClient ends a plugin client and removes the Unix socket its
// process listened on. A plugin that exits cleanly removes its socket
// itself; one killed (SIGKILL, a crash) leaves it in the temp directory,
// one per crash, for good.
func stopClient(c *goplugin.Client) {
	sock := ""
	if rc := c.ReattachConfig(); rc != nil && rc.Addr != nil && rc.Addr.Network() == "unix" {
		sock = rc.Addr.String()
	}
	c.Kill()
	removeSocket(sock)
}

// removeSocket removes path if it is a Unix socket in the temp directory,
// where go-plugin creates them ("plugin" + digits): never anything else.
func removeSocket(path string) {
	if path == "" || filepath.Dir(path) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(path), "plugin") {
		return
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}

// socket is the Unix socket of the running generation ("" if none).
func (p *Process) socket() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == nil {
		return ""
	}
	if rc := p.gen.client.ReattachConfig(); rc != nil && rc.Addr != nil && rc.Addr.Network() == "unix" {
		return rc.Addr.String()
	}
	return ""
}

// supervise notices the exit of the current generation and restarts.
func (p *Process) supervise(g *generation) {
	defer p.wg.Done()
	backoff := restartMinBackoff
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		// Poll for the exit: go-plugin reaps the process but offers no
		// channel for it. A failed call kicks an immediate check.
		for !g.client.Exited() {
			select {
			case <-tick.C:
			case <-p.kickc:
			case <-p.stop:
				return
			}
		}
		reason := "exited"
		if ps := g.cmd.ProcessState; ps != nil {
			reason = ps.String()
		}
		p.mu.Lock()
		g.reason = reason
		if p.gen == g {
			p.gen = nil
		}
		p.lastExit = reason
		p.ready = make(chan struct{})
		p.mu.Unlock()
		close(g.exited)
		// Release the dead generation's connection (and go-plugin's
		// goroutines); the process is already gone, so this is quick.
		g.stop()
		if stoppedBySignal(g.cmd.ProcessState) {
			// SIGTERM or SIGINT: most likely sent to the whole process
			// group (systemd, timeout, Ctrl-C) while the host itself is
			// shutting down, which then closes the plugin. Not an error;
			// if the host goes on, the plugin is restarted all the same.
			p.logger.Info("plugin stopped by a signal; restarting unless the host is stopping", "path", p.path, "pid", g.pid(), "reason", reason, "backoff", backoff)
		} else {
			p.logger.Error("plugin exited; restarting", "path", p.path, "pid", g.pid(), "reason", reason, "backoff", backoff)
		}
		if time.Since(g.started) >= healthyAfter {
			backoff = restartMinBackoff
		}
		for {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.stop:
				t.Stop()
				return
			}
			backoff = min(backoff*2, restartMaxBackoff)
			if restartHook != nil {
				restartHook()
			}
			ng, err := p.start(10 * time.Second)
			if err == nil {
				err = p.reconfigure(ng)
				if err != nil {
					ng.stop()
				}
			}
			if err != nil {
				p.logger.Error("restarting plugin failed", "path", p.path, "error", err, "next_backoff", backoff)
				p.mu.Lock()
				p.lastExit = reason + "; restart failed: " + err.Error()
				p.mu.Unlock()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				ng.stop()
				return
			}
			p.gen = ng
			p.restarts++
			ready := p.ready
			p.ready = nil
			p.mu.Unlock()
			close(ready)
			p.logger.Info("plugin restarted", "path", p.path, "pid", ng.pid(), "restarts", p.Restarts())
			g = ng
			break
		}
	}
}

// reconfigure configures every live handle in a fresh generation.
func (p *Process) reconfigure(g *generation) error {
	p.mu.Lock()
	hs := make([]*handle, 0, len(p.handles))
	for _, h := range p.handles {
		hs = append(hs, h)
	}
	p.mu.Unlock()
	for _, h := range hs {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := g.rpc.plugin.Configure(ctx, &pb.ConfigureRequest{Handle: h.id, ConfigJson: h.config})
		if err == nil && h.replay != nil {
			err = h.replay(ctx, g.rpc)
		}
		cancel()
		if err != nil {
			if e, ok := appError(err); ok {
				err = e
			}
			return fmt.Errorf("configuring handle %d again: %w", h.id, err)
		}
	}
	return nil
}

func (p *Process) kick() {
	select {
	case p.kickc <- struct{}{}:
	default:
	}
}

// current returns the running generation or the error calls get while
// there is none.
func (p *Process) current() (*generation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != nil {
		return p.gen, nil
	}
	return nil, p.downErrorLocked()
}

func (p *Process) downErrorLocked() *spi.Error {
	if p.closed {
		return spi.Errorf(spi.Unavailable, "%s is closed", p.decl)
	}
	return spi.Errorf(spi.Unavailable, "%s exited: %s; restarting", p.decl, p.lastExit)
}

// waitGen waits until a generation is running (after a restart).
func (p *Process) waitGen(ctx context.Context) (*generation, error) {
	for {
		p.mu.Lock()
		if p.closed {
			err := p.downErrorLocked()
			p.mu.Unlock()
			return nil, err
		}
		if p.gen != nil {
			g := p.gen
			p.mu.Unlock()
			return g, nil
		}
		ready := p.ready
		p.mu.Unlock()
		select {
		case <-ready:
		case <-p.stop:
		case <-ctx.Done():
			return nil, ctxError(ctx, p.decl.String())
		}
	}
}

// callError turns the error of an rpc made on generation g into what the
// spi caller sees: the implementation's own error, the context's, or an
// Unavailable error naming the plugin when the bridge failed.
func (p *Process) callError(ctx context.Context, g *generation, what string, err error) error {
	if e, ok := appError(err); ok {
		return e
	}
	if ctx.Err() != nil {
		return ctxError(ctx, fmt.Sprintf("%s: %s", p.decl, what))
	}
	// The connection failed. If the process died, say so: wait briefly
	// for the supervisor to see the exit, which lags the broken
	// connection by a few milliseconds.
	p.kick()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-g.exited:
		return spi.WrapError(spi.Unavailable, err, "%s exited: %s; restarting", p.decl, g.reason)
	case <-t.C:
	case <-ctx.Done():
	}
	return spi.WrapError(spi.Unavailable, err, "%s: %s failed: %v", p.decl, what, err)
}

// chanError is callError for a call on g's filter channel fc.
func (p *Process) chanError(ctx context.Context, g *generation, fc *filterChan, what string, err error) error {
	if e, ok := err.(chanAppError); ok {
		return e.e
	}
	if ctx.Err() == nil {
		p.channelBroke(g, fc, err)
	}
	return p.callError(ctx, g, what, err)
}

// channelBroke handles a failure of g's filter channel fc (not of a
// call's context): if the process lives on, later calls of g use the
// gRPC Filter service; if it died, the supervisor restarts it and the
// new process gets a channel of its own.
func (p *Process) channelBroke(g *generation, fc *filterChan, err error) {
	p.kick()
	if !g.fchan.CompareAndSwap(fc, nil) {
		return
	}
	go func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-g.exited:
		case <-t.C:
			p.logger.Warn("filter channel broke while the plugin runs on; calling it over gRPC until it restarts", "error", err)
		}
	}()
}

// do runs one rpc on the current generation.
func (p *Process) do(ctx context.Context, what string, fn func(ctx context.Context, c *clients) error) error {
	g, err := p.current()
	if err != nil {
		return err
	}
	if err := fn(ctx, g.rpc); err != nil {
		return p.callError(ctx, g, what, err)
	}
	return nil
}

func (p *Process) addHandle(cfg spi.Config) *handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextH++
	h := &handle{id: p.nextH, config: append(spi.Config(nil), cfg...)}
	if len(h.config) == 0 {
		h.config = spi.Config("{}")
	}
	p.handles[h.id] = h
	return h
}

func (p *Process) dropHandle(h *handle) {
	p.mu.Lock()
	delete(p.handles, h.id)
	p.mu.Unlock()
}

// release drops a handle here and in the plugin.
func (p *Process) release(h *handle) error {
	p.dropHandle(h)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := p.do(ctx, "release", func(ctx context.Context, c *clients) error {
		_, err := c.plugin.Release(ctx, &pb.Handle{Handle: h.id})
		return err
	})
	if spi.CodeOf(err) == spi.Unavailable {
		// The process is gone or going; its implementations with it.
		return nil
	}
	return err
}

// Close stops supervising and ends the plugin process: gracefully (the
// plugin closes its implementations, withdrawing registrations), then by
// force after two seconds.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	g := p.gen
	p.gen = nil
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	if g != nil {
		g.stop()
	}
	live.Lock()
	delete(live.procs, p)
	live.Unlock()
	return nil
}

// Decl returns the declaration the process was loaded from.
func (p *Process) Decl() Decl { return p.decl }

// Version returns the version the plugin reports.
func (p *Process) Version() string { return p.info.GetVersion() }

// Pid returns the process id of the running plugin, 0 while it restarts.
func (p *Process) Pid() int {
	g, err := p.current()
	if err != nil {
		return 0
	}
	return g.pid()
}

// Restarts returns how many times the plugin was restarted after a crash.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// FilterChannel reports whether the running plugin's filter calls use the
// filter channel (false: the gRPC Filter service, or not a filter, or
// restarting).
func (p *Process) FilterChannel() bool {
	g, err := p.current()
	return err == nil && g.fchan.Load() != nil
}

// Running reports whether the plugin is up (not restarting, not closed).
func (p *Process) Running() bool {
	_, err := p.current()
	return err == nil
}
