package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// Option configures Load.
type Option func(*options)

type options struct {
	cat          *spi.Catalog
	log          hclog.Logger
	logSet       bool // WithLogger given: the log block does not replace it
	startTimeout time.Duration
	gatherer     prometheus.Gatherer
}

// WithCatalog resolves implementation names in cat instead of spi.Default.
func WithCatalog(cat *spi.Catalog) Option { return func(o *options) { o.cat = cat } }

// WithLogger sends the stack's, its servers', clients' and plugins' logs
// to l instead of hclog.Default().
// A logger given here wins over the file's log block.
func WithLogger(l hclog.Logger) Option { return func(o *options) { o.log, o.logSet = l, true } }

// WithPluginStartTimeout bounds the start and handshake of each external
// plugin (default 10 s).
func WithPluginStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// Stack is a kite.hcl turned into running parts. It owns what it built —
// registries, plugin processes, clients, servers — and Close releases
// all of it. It is safe for concurrent use.
type Stack struct {
	cat          *spi.Catalog
	log          hclog.Logger
	startTimeout time.Duration

	// startMu serialises plugin starts, so a plugin two builds need at
	// once is started once.
	startMu sync.Mutex

	mu      sync.Mutex
	path    string
	file    *config.File
	plugins map[pluginKey]*loadedPlugin
	// registries are shared by label: every server and client of the
	// stack that names a registry talks through one instance of it, so a
	// registration is seen by this process's own watchers at once and a
	// ZooKeeper/etcd session is opened once.
	registries map[string]spi.Registry
	// closers are other built components that hold resources (bridged
	// filters, codecs, balancers), released on Close.
	closers []spi.Closer
	clients map[*core.Client]*managedClient
	servers map[*core.Server]struct{}
	closed  bool

	ops ops // health, admin listener, log block (ops.go)
}

type pluginKey struct {
	kind spi.Kind
	name string
}

type loadedPlugin struct {
	decl  *config.PluginDecl
	entry spi.Entry
	proc  *plugin.Process
}

// PluginInfo describes one implementation a stack can build from.
type PluginInfo struct {
	Kind    spi.Kind
	Name    string
	Version string
	Doc     string
	// Source is "builtin" for a compiled-in implementation, else the
	// plugin binary's path.
	Source string
	// SHA256 is the checksum an external plugin was verified against ("" when builtin).
	SHA256 string
	// Pid is the process id of a running external plugin (0 when builtin).
	Pid int
}

// Load parses the kite.hcl at path against the catalog (spi.Default
// unless WithCatalog). Registries, balancers, filters, codecs and
// compressors are built when a server or client needs them, and an
// external plugin is started — its sha256 checked first, and every
// block it serves checked against the schema it reports — only when a
// block this process builds uses it: a server does not start the
// balancer plugin only its clients use. StartPlugins (and Check) start
// all of them. Errors name the kite.hcl position they come from.
func Load(path string, opts ...Option) (*Stack, error) {
	o := options{cat: spi.Default, log: hclog.Default(), startTimeout: 10 * time.Second}
	for _, fn := range opts {
		fn(&o)
	}
	f, err := config.Load(path, o.cat)
	if err != nil {
		return nil, err
	}
	ownLogger := false
	if f.Log != nil && !o.logSet {
		// The log block sets the process's logging: compiled-in plugins
		// log through hclog.Default(), so it becomes the default too.
		o.log, ownLogger = logFromBlock(f.Log), true
		hclog.SetDefault(o.log)
	}
	for _, w := range f.Warnings {
		o.log.Warn(diagString(w))
	}
	st := &Stack{
		cat: o.cat, log: o.log, startTimeout: o.startTimeout,
		path: path, file: f,
		plugins:    map[pluginKey]*loadedPlugin{},
		registries: map[string]spi.Registry{},
		clients:    map[*core.Client]*managedClient{},
		servers:    map[*core.Server]struct{}{},
		ops:        ops{started: time.Now(), gatherer: o.gatherer, ownLogger: ownLogger},
	}
	return st, nil
}

// StartPlugins starts every external plugin the current file declares
// that is not running yet and checks every plugin-served block against
// its plugin's schema. Load starts plugins only when a block that is
// built uses them; Check and `kite plugins` call this to verify (or
// list) all of them up front.
func (st *Stack) StartPlugins() error {
	f := st.File()
	for _, d := range f.Plugins {
		if _, err := st.startPlugin(f, d); err != nil {
			return err
		}
	}
	return st.checkPluginConfigs(f)
}

// File returns the configuration the stack currently follows (the last
// one loaded or reloaded). Treat it as read-only.
func (st *Stack) File() *config.File {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.file
}

// Catalog returns the catalog the stack resolves compiled-in names in.
func (st *Stack) Catalog() *spi.Catalog { return st.cat }

// Logger returns the stack's logger.
func (st *Stack) Logger() hclog.Logger { return st.log }

// checkDecls refuses a plugin block of f whose declaration changed
// since the stack started that plugin: a running plugin's
// implementations are in use, so swapping the binary needs a restart.
// Plugins not started yet are not started here.
func (st *Stack) checkDecls(f *config.File) error {
	for _, d := range f.Plugins {
		if lp := st.plugin(d.Kind, d.Name); lp != nil && !sameDecl(lp.decl, d) {
			return changedDecl(d, lp.decl)
		}
	}
	return nil
}

func sameDecl(a, b *config.PluginDecl) bool {
	return a.Path == b.Path && a.SHA256 == b.SHA256 && equalStrings(a.Args, b.Args) && equalEnv(a.Env, b.Env) && equalEnv(a.Files, b.Files)
}

func changedDecl(d, was *config.PluginDecl) error {
	return fmt.Errorf("%s: %s plugin %q changed (path, sha256, args, env or files) since it was loaded from %s; restart the process to load the new binary",
		pos(d.DeclRange), d.Kind, d.Name, was.Path)
}

// startPlugin returns the running plugin declared by d, starting it
// first if needed (starts are serialised: one process per plugin). On a
// start, every block of f the plugin serves is checked against the
// schema it reports.
func (st *Stack) startPlugin(f *config.File, d *config.PluginDecl) (*loadedPlugin, error) {
	key := pluginKey{d.Kind, d.Name}
	st.startMu.Lock()
	defer st.startMu.Unlock()
	st.mu.Lock()
	lp, closed := st.plugins[key], st.closed
	st.mu.Unlock()
	if closed {
		return nil, errors.New("stack: closed")
	}
	if lp != nil {
		if !sameDecl(lp.decl, d) {
			return nil, changedDecl(d, lp.decl)
		}
		return lp, nil
	}
	timeout := st.startTimeout
	if d.StartTimeout > 0 {
		timeout = d.StartTimeout // the block's start_timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	entry, proc, err := plugin.Load(ctx, plugin.Decl{
		Kind: d.Kind, Name: d.Name, Path: d.Path, SHA256: d.SHA256,
		Args: d.Args, Env: envList(d.Env), Files: fileSums(d.Files), StartTimeout: timeout,
	}, st.log)
	cancel()
	if err != nil {
		// plugin.Load's message names the binary (and, for a checksum
		// mismatch, both sums); prefix where the fault is: the path,
		// sha256 or files attribute when the error says which, else
		// the block.
		return nil, fmt.Errorf("%s: loading %s plugin %q: %w", pos(declAt(d, err)), d.Kind, d.Name, err)
	}
	lp = &loadedPlugin{decl: d, entry: entry, proc: proc}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		_ = proc.Close()
		return nil, errors.New("stack: closed")
	}
	st.plugins[key] = lp
	st.mu.Unlock()
	st.log.Debug("plugin loaded", "kind", d.Kind, "name", d.Name, "path", d.Path, "version", entry.Version, "pid", proc.Pid())
	var errs []error
	for _, c := range f.Components(d.Kind) {
		if c.Plugin != nil && c.Impl == d.Name {
			errs = append(errs, checkSchema(c, entry.Schema))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return lp, nil
}

// declAt is the position of the plugin block's attribute a load error is
// about (path — or command, which names the executable instead — sha256,
// files), else the block's.
func declAt(d *config.PluginDecl, err error) hcl.Range {
	var de *plugin.DeclError
	if errors.As(err, &de) {
		for _, attr := range []string{de.Field, map[string]string{"path": "command"}[de.Field]} {
			if r, ok := d.Ranges[attr]; ok && attr != "" {
				return r
			}
		}
	}
	return d.DeclRange
}

// checkPluginConfigs checks each block served by a running plugin
// against the schema the plugin reported when it started: config.Parse
// could not, since the schema was unknown until then. Blocks of plugins
// not started yet are checked when they start.
func (st *Stack) checkPluginConfigs(f *config.File) error {
	var errs []error
	for _, kind := range []spi.Kind{spi.KindRegistry, spi.KindBalancer, spi.KindFilter, spi.KindCodec, spi.KindCompressor} {
		for _, c := range f.Components(kind) {
			if c.Plugin == nil {
				continue
			}
			lp := st.plugin(c.Kind, c.Impl)
			if lp == nil {
				continue
			}
			if err := checkSchema(c, lp.entry.Schema); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func checkSchema(c *config.Component, schema spi.Schema) error {
	var attrs map[string]json.RawMessage
	if len(c.Config) > 0 {
		if err := json.Unmarshal(c.Config, &attrs); err != nil {
			return fmt.Errorf("%s: %s %q: configuration is not a JSON object: %v", pos(c.DeclRange), c.Kind, c.Label, err)
		}
	}
	known := map[string]spi.Field{}
	names := make([]string, 0, len(schema))
	for _, fld := range schema {
		known[fld.Name] = fld
		names = append(names, fld.Name)
	}
	sort.Strings(names)
	var errs []error
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fld, ok := known[k]
		at := c.DeclRange
		if r, ok := c.AttrRanges[k]; ok {
			at = r
		}
		if !ok {
			valid := "it takes no attributes"
			if len(names) > 0 {
				valid = "valid attributes: " + strings.Join(names, ", ")
			}
			errs = append(errs, fmt.Errorf("%s: unsupported attribute %q in %s %q (served by plugin %s); %s",
				pos(at), k, c.Kind, c.Label, c.Plugin.Command(), valid))
			continue
		}
		if msg := typeMismatch(fld, attrs[k]); msg != "" {
			errs = append(errs, fmt.Errorf("%s: attribute %q of %s %q: %s", pos(at), k, c.Kind, c.Label, msg))
		}
	}
	for _, fld := range schema {
		if _, ok := attrs[fld.Name]; fld.Required && !ok {
			errs = append(errs, fmt.Errorf("%s: %s %q (served by plugin %s) needs attribute %q (%s)",
				pos(c.DeclRange), c.Kind, c.Label, c.Plugin.Command(), fld.Name, fld.Doc))
		}
	}
	return errors.Join(errs...)
}

// typeMismatch checks a JSON value against a field type ("" when it fits).
func typeMismatch(fld spi.Field, raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err.Error()
	}
	ok := true
	switch fld.Type {
	case spi.TypeString:
		_, ok = v.(string)
	case spi.TypeDuration:
		s, isStr := v.(string)
		if !isStr {
			return "a duration string such as \"500ms\" is required"
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Sprintf("invalid duration %q: %v", s, err)
		}
	case spi.TypeNumber:
		_, ok = v.(float64)
	case spi.TypeBool:
		_, ok = v.(bool)
	case spi.TypeStringList:
		_, ok = v.([]any)
	case spi.TypeStringMap:
		_, ok = v.(map[string]any)
	}
	if !ok {
		return fmt.Sprintf("a %s is required", fld.Type)
	}
	return ""
}

func (st *Stack) plugin(kind spi.Kind, name string) *loadedPlugin {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.plugins[pluginKey{kind, name}]
}

// Plugins lists every implementation the stack can build from: the
// catalog's compiled-in entries, with the file's external plugins (which
// replace a compiled-in one of the same kind and name) carrying their
// path, checksum and the version the running binary reports. A declared
// plugin not started yet (nothing built uses it; see StartPlugins) is
// listed with an empty Version and Pid 0.
func (st *Stack) Plugins() []PluginInfo {
	st.mu.Lock()
	ext := make(map[pluginKey]*loadedPlugin, len(st.plugins))
	for k, v := range st.plugins {
		ext[k] = v
	}
	f := st.file
	st.mu.Unlock()
	var idle []*config.PluginDecl
	for _, d := range f.Plugins {
		if _, ok := ext[pluginKey{d.Kind, d.Name}]; !ok {
			idle = append(idle, d)
			ext[pluginKey{d.Kind, d.Name}] = nil
		}
	}
	var out []PluginInfo
	for _, e := range st.cat.Entries() {
		if _, shadowed := ext[pluginKey{e.Kind, e.Name}]; shadowed {
			continue
		}
		out = append(out, PluginInfo{Kind: e.Kind, Name: e.Name, Version: e.Version, Doc: e.Doc, Source: e.Source})
	}
	for _, d := range idle {
		out = append(out, PluginInfo{Kind: d.Kind, Name: d.Name, Source: d.Command(), SHA256: d.SHA256})
	}
	for _, lp := range ext {
		if lp == nil {
			continue
		}
		out = append(out, PluginInfo{
			Kind: lp.entry.Kind, Name: lp.entry.Name, Version: lp.entry.Version, Doc: lp.entry.Doc,
			Source: lp.decl.Command(), SHA256: lp.decl.SHA256, Pid: lp.proc.Pid(),
		})
	}
	order := map[spi.Kind]int{}
	for i, k := range spi.Kinds {
		order[k] = i
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return order[out[i].Kind] < order[out[j].Kind]
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// component resolves ref (a block label or implementation name) of kind
// in f. at is where the reference is written, for errors about
// components that have no block of their own.
func (st *Stack) component(f *config.File, kind spi.Kind, ref string, at hcl.Range) (*config.Component, hcl.Range, error) {
	c, ok := f.Component(kind, ref)
	if !ok {
		return nil, at, fmt.Errorf("%s: no %s %q", pos(at), kind, ref)
	}
	where := c.DeclRange
	if c.Implicit || where.Filename == "" {
		where = at
	}
	return c, where, nil
}

// build builds c (a component of f) through the plugin serving it —
// started now if it is not running yet — or the catalog; errors name
// where in the file the component comes from.
func (st *Stack) build(f *config.File, c *config.Component, where hcl.Range) (any, error) {
	var (
		v   any
		err error
	)
	if c.Plugin != nil {
		lp, serr := st.startPlugin(f, c.Plugin)
		if serr != nil {
			return nil, serr
		}
		if serr := checkSchema(c, lp.entry.Schema); serr != nil {
			return nil, serr
		}
		v, err = lp.entry.New(c.Config)
		if err == nil && !implementsKind(c.Kind, v) {
			err = fmt.Errorf("plugin returned %T, which is not a %s", v, c.Kind)
		}
	} else {
		v, err = st.cat.Build(c.Kind, c.Impl, c.Config)
	}
	if err != nil {
		what := fmt.Sprintf("%s %q", c.Kind, c.Label)
		if c.Label != c.Impl {
			what = fmt.Sprintf("%s %q %q", c.Kind, c.Impl, c.Label)
		}
		// A plugin that names the attribute at fault (spi.FieldError) is
		// reported at that attribute.
		if r, ok := c.AttrRanges[spi.FieldOf(err)]; ok && !c.Implicit {
			where = r
		}
		return nil, fmt.Errorf("%s: building %s: %w", pos(where), what, err)
	}
	return v, nil
}

func implementsKind(kind spi.Kind, v any) bool {
	switch kind {
	case spi.KindCodec:
		_, ok := v.(spi.Codec)
		return ok
	case spi.KindCompressor:
		_, ok := v.(spi.Compressor)
		return ok
	case spi.KindRegistry:
		_, ok := v.(spi.Registry)
		return ok
	case spi.KindBalancer:
		_, ok := v.(spi.Balancer)
		return ok
	case spi.KindFilter:
		_, ok := v.(spi.Filter)
		return ok
	}
	return v != nil
}

// keep records v for Close when it holds resources.
func (st *Stack) keep(v any) {
	if c, ok := v.(spi.Closer); ok {
		st.mu.Lock()
		st.closers = append(st.closers, c)
		st.mu.Unlock()
	}
}

// Registry returns the registry ref names in the current file (a block
// label or an implementation name), building it on first use. It is
// shared by every server and client of the stack and closed by Close.
func (st *Stack) Registry(ref string) (spi.Registry, error) {
	f := st.File()
	return st.registry(f, ref, hcl.Range{})
}

func (st *Stack) registry(f *config.File, ref string, at hcl.Range) (spi.Registry, error) {
	c, where, err := st.component(f, spi.KindRegistry, ref, at)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, errors.New("stack: closed")
	}
	r := st.registries[c.Label]
	st.mu.Unlock()
	if r != nil {
		return r, nil
	}
	v, err := st.build(f, c, where)
	if err != nil {
		return nil, err
	}
	r = v.(spi.Registry)
	st.mu.Lock()
	defer st.mu.Unlock()
	if prev := st.registries[c.Label]; prev != nil || st.closed {
		// Built concurrently by another caller (or closed meanwhile).
		_ = r.Close()
		if st.closed {
			return nil, errors.New("stack: closed")
		}
		return prev, nil
	}
	st.registries[c.Label] = r
	return r, nil
}

// filters builds the filter chain named by refs, outermost first.
func (st *Stack) filters(f *config.File, refs []string, at hcl.Range) ([]spi.Filter, error) {
	out := make([]spi.Filter, 0, len(refs))
	for _, ref := range refs {
		c, where, err := st.component(f, spi.KindFilter, ref, at)
		if err != nil {
			return nil, err
		}
		v, err := st.build(f, c, where)
		if err != nil {
			return nil, err
		}
		st.keep(v)
		out = append(out, v.(spi.Filter))
	}
	return out, nil
}

func (st *Stack) codec(f *config.File, ref string, at hcl.Range) (spi.Codec, error) {
	c, where, err := st.component(f, spi.KindCodec, ref, at)
	if err != nil {
		return nil, err
	}
	v, err := st.build(f, c, where)
	if err != nil {
		return nil, err
	}
	st.keep(v)
	return v.(spi.Codec), nil
}

func (st *Stack) compressor(f *config.File, ref string, at hcl.Range) (spi.Compressor, error) {
	c, where, err := st.component(f, spi.KindCompressor, ref, at)
	if err != nil {
		return nil, err
	}
	v, err := st.build(f, c, where)
	if err != nil {
		return nil, err
	}
	st.keep(v)
	return v.(spi.Compressor), nil
}

func (st *Stack) balancer(f *config.File, ref string, at hcl.Range) (spi.Balancer, *config.Component, error) {
	c, where, err := st.component(f, spi.KindBalancer, ref, at)
	if err != nil {
		return nil, nil, err
	}
	v, err := st.build(f, c, where)
	if err != nil {
		return nil, nil, err
	}
	st.keep(v)
	return v.(spi.Balancer), c, nil
}

// Close closes every client and server the stack built (servers at once:
// use Serve's context for a graceful stop), then the components, the
// registries (withdrawing what they registered) and the plugin processes.
// It is idempotent.
func (st *Stack) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	clients := make([]*core.Client, 0, len(st.clients))
	for c := range st.clients {
		clients = append(clients, c)
	}
	servers := make([]*core.Server, 0, len(st.servers))
	for s := range st.servers {
		servers = append(servers, s)
	}
	closers := st.closers
	regs := st.registries
	plugins := st.plugins
	st.clients, st.servers, st.closers, st.registries = nil, nil, nil, nil
	st.mu.Unlock()

	var errs []error
	for _, c := range clients {
		errs = append(errs, c.Close())
	}
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i].Close())
	}
	labels := make([]string, 0, len(regs))
	for l := range regs {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		if err := regs[l].Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing registry %q: %w", l, err))
		}
	}
	// Plugin processes last: the components above may still talk to them
	// while closing (a bridged registry withdraws its registrations).
	for _, lp := range plugins {
		errs = append(errs, lp.proc.Close())
	}
	errs = append(errs, st.closeAdmin())
	return errors.Join(errs...)
}

// pos formats a range's start as file:line:col.
func pos(r hcl.Range) string {
	if r.Filename == "" {
		return "kite.hcl"
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func diagString(d *hcl.Diagnostic) string {
	s := d.Summary
	if d.Detail != "" {
		s += ": " + d.Detail
	}
	if d.Subject != nil {
		s = pos(*d.Subject) + ": " + s
	}
	return s
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// fileSums lists a plugin block's files (path -> sha256) in path order.
func fileSums(m map[string]string) []plugin.FileSum {
	out := make([]plugin.FileSum, 0, len(m))
	for f, sum := range m {
		out = append(out, plugin.FileSum{Path: f, SHA256: sum})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalEnv(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
