package core

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// GRPCOptions turns on gRPC service on a Server (EnableGRPC). Zero values
// take the defaults below.
type GRPCOptions struct {
	// MaxMessage bounds one incoming gRPC message; a larger one is
	// refused (ResourceExhausted) after its 5-byte prefix, before any
	// allocation. Default: the server's MaxFrame (4 MiB).
	MaxMessage int
	// StreamWindow is the HTTP/2 receive window of each stream in bytes.
	// Default 1 MiB.
	StreamWindow int
	// ConnWindow is the HTTP/2 receive window of the connection. Default
	// 16 MiB.
	ConnWindow int
}

// grpcServer is a server's gRPC state: options and the gRPC-only methods
// (health, reflection) keyed by their full gRPC path.
type grpcServer struct {
	s     *Server
	opts  GRPCOptions
	mu    sync.RWMutex
	extra map[string]*method // "/pkg.Service/Method" → method
	paths sync.Map           // path string → *method, lookups that hit
	desc  []*ServiceDesc     // gRPC-only services, for reflection

	workers *workerPool[*h2stream] // unary calls run here (workers.go)
}

// EnableGRPC makes every listener of s answer gRPC (HTTP/2 with
// content-type application/grpc) besides Kite's protocol: the first bytes
// of each accepted connection tell them apart (the HTTP/2 client preface
// "PRI * HTTP/2.0" against Kite's magic "KT"). Call it before serving.
//
// Method names map as docs/GRPC.md says: "/pkg.Svc/Method" is the Kite
// method "pkg.Svc.Method" (proto services are registered under their
// full names); a Go service registered under a short name "Svc" answers
// "/<any package>.Svc/Method" too. gRPC-only services added with
// RegisterGRPC are matched by their full path first.
func (s *Server) EnableGRPC(opts GRPCOptions) error {
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = s.opts.MaxFrame
	}
	if opts.StreamWindow <= 0 {
		opts.StreamWindow = 1 << 20
	}
	if opts.ConnWindow <= 0 {
		opts.ConnWindow = 16 << 20
	}
	if opts.StreamWindow < 65535 || opts.StreamWindow > 1<<31-1 || opts.ConnWindow < 65535 || opts.ConnWindow > 1<<31-1 {
		return fmt.Errorf("kite: grpc windows must be between 64 KiB and 2 GiB (got stream %d, conn %d)", opts.StreamWindow, opts.ConnWindow)
	}
	g := &grpcServer{s: s, opts: opts, extra: map[string]*method{}, workers: newWorkerPool((*h2stream).runOnWorker)}
	if !s.grpc.CompareAndSwap(nil, g) {
		return errors.New("kite: EnableGRPC called twice")
	}
	return nil
}

// GRPCEnabled reports whether EnableGRPC was called.
func (s *Server) GRPCEnabled() bool { return s.grpc.Load() != nil }

// RegisterGRPC adds a service reachable only over gRPC, under its full
// proto name (e.g. "grpc.health.v1.Health"): gRPC's own services whose
// names cannot be Kite service names. Handlers receive proto-decoded
// requests like any Kite method and run behind the same filters.
func (s *Server) RegisterGRPC(fullName string, desc *ServiceDesc, impl any) error {
	g := s.grpc.Load()
	if g == nil {
		return errors.New("kite: RegisterGRPC before EnableGRPC")
	}
	if fullName == "" || strings.ContainsAny(fullName, "/ ") {
		return fmt.Errorf("kite: invalid gRPC service name %q", fullName)
	}
	d := *desc
	d.Name = fullName
	if err := d.validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	add := func(name string, m *method) error {
		path := "/" + fullName + "/" + name
		if _, dup := g.extra[path]; dup {
			return fmt.Errorf("kite: gRPC method %s registered twice", path)
		}
		g.extra[path] = m
		return nil
	}
	for _, m := range desc.Methods {
		if err := add(m.Name, &method{full: fullName + "." + m.Name, srv: impl, newReq: m.NewRequest, handler: m.Handler, idempotent: m.Idempotent}); err != nil {
			return err
		}
	}
	for _, st := range desc.Streams {
		if err := add(st.Name, &method{full: fullName + "." + st.Name, srv: impl, stream: st.Handler}); err != nil {
			return err
		}
	}
	g.desc = append(g.desc, &d)
	return nil
}

// GRPCServices lists the gRPC-only services (full proto names).
func (s *Server) GRPCServices() []string {
	g := s.grpc.Load()
	if g == nil {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]string, 0, len(g.desc))
	for _, d := range g.desc {
		out = append(out, d.Name)
	}
	return out
}

// GRPCMethodName maps a gRPC path "/pkg.Svc/Method" to the Kite method
// name "pkg.Svc.Method": the same name, dotted. ok is false for paths not
// of that form.
func GRPCMethodName(path string) (name string, ok bool) {
	rest, found := strings.CutPrefix(path, "/")
	if !found {
		return "", false
	}
	svc, meth, found := strings.Cut(rest, "/")
	if !found || svc == "" || meth == "" || strings.ContainsAny(meth, "/.") {
		return "", false
	}
	return svc + "." + meth, true
}

// lookup finds the method a gRPC path names, or nil: a gRPC-only
// service's, else the method a Kite call of the same name reaches
// (lookupMethod: the full name, a proto service's unambiguous short
// alias, a Go service's short name whatever the package).
func (g *grpcServer) lookup(path string) *method {
	if m, ok := g.paths.Load(path); ok {
		return m.(*method)
	}
	g.mu.RLock()
	m := g.extra[path]
	g.mu.RUnlock()
	if m == nil {
		name, ok := GRPCMethodName(path)
		if !ok {
			return nil
		}
		g.s.mu.Lock()
		m = g.s.lookupMethod([]byte(name)) // the same rules as a Kite call
		g.s.mu.Unlock()
	}
	if m != nil {
		g.paths.Store(path, m) // only hits are cached: unknown paths cannot grow it
	}
	return m
}

// start runs an accepted connection: gRPC when the server has it enabled
// and the peer opens with the HTTP/2 preface, else Kite's protocol.
func (sc *serverConn) start() {
	g := sc.s.grpc.Load()
	if g == nil {
		if sc.refuseH2OverTLS() {
			return
		}
		sc.readLoop()
		return
	}
	switch sniff(sc) {
	case sniffKite:
		sc.readLoop()
	case sniffGRPC:
		sc.serveGRPC(g)
	case sniffHTTP1:
		sc.s.log.Warn("closing connection: HTTP/1.x request on a Kite/gRPC port", "peer", sc.peer)
		_, _ = sc.conn.Write([]byte(http1Refusal))
		sc.closeRaw(errors.New("HTTP/1.x request"))
	case sniffBadPreface:
		sc.s.log.Warn("closing connection: malformed HTTP/2 client preface", "peer", sc.peer)
		// An HTTP/2 peer understands a GOAWAY PROTOCOL_ERROR.
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		_ = fr.WriteSettings()
		_ = fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte("malformed HTTP/2 client preface"))
		_, _ = sc.conn.Write(b.Bytes())
		sc.closeRaw(errors.New("malformed HTTP/2 preface"))
	default: // the peer went away before saying anything
		sc.closeRaw(io.EOF)
	}
}

// refuseH2OverTLS ends a TLS connection that negotiated HTTP/2 (a gRPC
// client) on a server that does not serve gRPC, with a GOAWAY that says
// so, rather than letting Kite's reader report a bad magic. It reads
// nothing (the handshake runs on the peek) and reports whether it ended
// the connection.
func (sc *serverConn) refuseH2OverTLS() bool {
	tc, ok := sc.conn.(*tlsConn)
	if !ok {
		return false
	}
	if _, err := sc.r.Peek(1); err != nil || tc.ConnectionState().NegotiatedProtocol != ALPNGRPC {
		return false // Kite's reader reports what went wrong, as before
	}
	sc.s.log.Warn("closing connection: a gRPC (HTTP/2) client on a server without gRPC", "peer", sc.peer)
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteSettings()
	_ = fr.WriteGoAway(0, http2.ErrCodeRefusedStream, []byte("this Kite server does not serve gRPC (EnableGRPC, or a grpc block in kite.hcl)"))
	_, _ = sc.conn.Write(b.Bytes())
	sc.closeRaw(errors.New("gRPC client on a server without gRPC"))
	return true
}

// http1Refusal answers an HTTP/1.x request: the port speaks Kite and
// gRPC (HTTP/2) only.
const http1Refusal = "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 69\r\n\r\nthis port speaks Kite and gRPC (HTTP/2 with prior knowledge) only.\r\n\r\n"

// closeRaw ends a connection that never reached a protocol loop: what
// readLoop's exit does.
func (sc *serverConn) closeRaw(err error) {
	sc.close(err)
	sc.w.close(err)
	sc.s.mu.Lock()
	delete(sc.s.conns, sc)
	sc.s.mu.Unlock()
	sc.s.connWG.Done()
}

type sniffResult uint8

const (
	sniffEOF sniffResult = iota
	sniffKite
	sniffGRPC
	sniffHTTP1
	sniffBadPreface
)

// sniff classifies a connection by its first bytes, read through the
// connection's own buffered reader so that nothing is lost either way.
// One byte tells Kite ('K') from the rest; only an HTTP/2 candidate
// ('P') waits for the whole 24-byte preface.
func sniff(sc *serverConn) sniffResult {
	b, err := sc.r.Peek(1)
	if err != nil || len(b) == 0 {
		return sniffEOF
	}
	if b[0] == 'K' {
		return sniffKite
	}
	b, _ = sc.r.Peek(len(http2.ClientPreface)) // what arrived, on error
	switch Sniff(b) {
	case "grpc":
		return sniffGRPC
	case "http1":
		return sniffHTTP1
	case "bad-preface":
		return sniffBadPreface
	case "":
		return sniffEOF
	}
	return sniffKite // Kite's reader reports the bad magic
}

// Sniff tells what protocol a connection opening with b speaks: "kite",
// "grpc", "http1", "bad-preface" or "" when b is too short to tell. It
// is the classification the server applies (exported for tests and the
// fuzz target).
func Sniff(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	switch b[0] {
	case 'K':
		return "kite"
	case 'P':
		if len(b) >= len(http2.ClientPreface) && string(b[:len(http2.ClientPreface)]) == http2.ClientPreface {
			return "grpc"
		}
		for _, m := range []string{"POST ", "PUT ", "PATCH "} {
			if bytes.HasPrefix(b, []byte(m)) {
				return "http1"
			}
		}
		for _, p := range []string{http2.ClientPreface, "POST ", "PUT ", "PATCH "} {
			if len(b) < len(p) && strings.HasPrefix(p, string(b)) {
				return "" // could still become either
			}
		}
		return "bad-preface"
	case 'G', 'H', 'D', 'O', 'C', 'T':
		for _, m := range []string{"GET ", "HEAD ", "DELETE ", "OPTIONS ", "CONNECT ", "TRACE "} {
			if bytes.HasPrefix(b, []byte(m)) {
				return "http1"
			}
		}
	}
	return "kite"
}

// parseGRPCTimeout parses a grpc-timeout header: at most 8 digits and a
// unit (H, M, S, m, u, n).
func parseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("malformed grpc-timeout %q", v)
	}
	if n > int64(1<<62)/int64(unit) {
		return 1 << 62, nil
	}
	return time.Duration(n) * unit, nil
}

// encodeGRPCTimeout writes d as a grpc-timeout value (rounded up, at
// most 8 digits).
func encodeGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	units := []struct {
		d time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for _, u := range units {
		n := (d + u.d - 1) / u.d
		if n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + string(u.c)
		}
	}
	return "99999999H"
}

// encodeGRPCMessage percent-encodes a grpc-message value as the gRPC
// HTTP/2 spec requires (bytes outside 0x20–0x7E, and '%').
func encodeGRPCMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeGRPCMessage undoes encodeGRPCMessage; malformed escapes are kept
// as they are.
func decodeGRPCMessage(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// reservedHeader reports headers that belong to HTTP/2 or gRPC itself and
// never become call metadata.
func reservedHeader(k string) bool {
	switch k {
	case "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
		"grpc-status", "grpc-message", "grpc-status-details-bin", "user-agent", "connection",
		"content-length", "host", "grpc-previous-rpc-attempts", "grpc-retry-pushback-ms":
		return true
	}
	return strings.HasPrefix(k, ":")
}

// headerToMD adds a header to call metadata: "-bin" values are base64 on
// the wire (padded or not) and raw bytes in Kite metadata.
func headerToMD(md *spi.Metadata, k, v string) error {
	if strings.HasSuffix(k, "-bin") {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return fmt.Errorf("header %s: malformed base64: %v", k, err)
		}
		v = string(b)
	}
	md.Add(k, v)
	return nil
}

// mdToHeaders appends metadata as header fields; keys are lower-cased
// (HTTP/2 requires it) and "-bin" values base64-encoded.
func mdToHeaders(dst []hpack.HeaderField, md *spi.Metadata) []hpack.HeaderField {
	md.Range(func(k, v string) bool {
		k = strings.ToLower(k)
		if reservedHeader(k) || !validHeaderKey(k) {
			return true
		}
		if strings.HasSuffix(k, "-bin") {
			v = base64.RawStdEncoding.EncodeToString([]byte(v))
		} else if !validHeaderValue(v) {
			return true // not expressible as an HTTP/2 header; dropped
		}
		dst = append(dst, hpack.HeaderField{Name: k, Value: v})
		return true
	})
	return dst
}

func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7E {
			return false
		}
	}
	return true
}

// codecForContentType picks the codec for a gRPC content-type:
// application/grpc and application/grpc+proto use proto, +json JSON, and
// +name any linked codec of that name.
func codecForContentType(t *codecTable, ct string) (spi.Codec, bool) {
	sub, ok := strings.CutPrefix(ct, "application/grpc")
	if !ok {
		return nil, false
	}
	if i := strings.IndexByte(sub, ';'); i >= 0 {
		sub = sub[:i]
	}
	switch sub {
	case "", "+proto":
		return t.codecs[spi.CodecProto], true
	case "+json":
		return t.codecs[spi.CodecJSON], true
	}
	if name, ok := strings.CutPrefix(sub, "+"); ok {
		for _, c := range t.codecs {
			if c != nil && c.Name() == name {
				return c, true
			}
		}
		return nil, true
	}
	return nil, false
}

// acceptsEncoding reports whether a grpc-accept-encoding list
// ("gzip,zstd", "gzip, identity") names enc.
func acceptsEncoding(list, enc string) bool {
	for list != "" {
		var e string
		e, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(e) == enc {
			return true
		}
	}
	return false
}

// compressorByName finds a linked compressor for a grpc-encoding value.
func compressorByName(t *codecTable, name string) spi.Compressor {
	for _, c := range t.compressors {
		if c != nil && c.Name() == name {
			return c
		}
	}
	return nil
}

// MethodInfo describes one registered method for tools such as gRPC
// server reflection.
type MethodInfo struct {
	Service, Method string
	Stream          bool
	// Request and Response are the Go types of a unary method's messages
	// (pointer types as the handler takes them); nil when unknown.
	Request, Response reflect.Type
	// Impl is the value the service was registered with.
	Impl any
}

// MethodInfos lists the Kite methods registered on s, sorted by name.
func (s *Server) MethodInfos() []MethodInfo {
	s.mu.Lock()
	ms := make([]*method, 0, len(s.methods))
	for _, m := range s.methods {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	sort.Slice(ms, func(i, j int) bool { return ms[i].full < ms[j].full })
	out := make([]MethodInfo, 0, len(ms))
	for _, m := range ms {
		svc, name, _ := spi.SplitMethod(m.full)
		mi := MethodInfo{Service: svc, Method: name, Stream: m.stream != nil, Impl: m.srv}
		if m.newReq != nil {
			mi.Request = reflect.TypeOf(m.newReq())
		}
		if m.srv != nil && m.stream == nil {
			if mv := reflect.ValueOf(m.srv).MethodByName(name); mv.IsValid() && mv.Type().NumOut() == 2 {
				mi.Response = mv.Type().Out(0)
			}
		}
		out = append(out, mi)
	}
	return out
}
