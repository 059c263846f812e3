package hostile

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/internal/testkit"
	authfilter "github.com/kiterpc/kite/plugins/filter-auth"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/compress-s2"
	_ "github.com/kiterpc/kite/plugins/compress-zstd"
)

// serverEnv makes the test binary a server process configured by the JSON
// spec it holds (see runServer): the attacks run against another process
// so that its memory can be read from /proc without the attacker's own
// allocations in the figure.
const serverEnv = "KITE_HOSTILE_SERVER"

// spec configures the server process. Options is decoded into
// core.ServerOptions (fields it does not know are ignored).
type spec struct {
	Options json.RawMessage `json:"options"`
	// Token, when set, puts the auth filter in front of every method.
	Token string `json:"token"`
}

const token = "s3cret-t0ken"

func TestMain(m *testing.M) {
	if s := os.Getenv(serverEnv); s != "" {
		os.Exit(runServer(s))
	}
	goleak.VerifyTestMain(m)
}

// svc is the service the server process serves (raw codec: requests and
// responses are bytes).
type svc struct{}

// Echo answers with the request's length.
func (svc) Echo(ctx context.Context, req *[]byte) (*[]byte, error) {
	out := []byte(strconv.Itoa(len(*req)))
	return &out, nil
}

// Hold keeps the decoded request alive for 300 ms (a handler doing work).
func (svc) Hold(ctx context.Context, req *[]byte) (*[]byte, error) {
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	out := []byte(strconv.Itoa(len(*req)))
	return &out, nil
}

// Chat echoes every message.
func (svc) Chat(ctx context.Context, st *core.Stream) error {
	for {
		var b []byte
		if err := st.Recv(&b); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := st.Send(b); err != nil {
			return err
		}
	}
}

// Sink never reads; it returns nil when its context ends, however that
// happens.
func (svc) Sink(ctx context.Context, st *core.Stream) error {
	<-ctx.Done()
	return nil
}

func runServer(raw string) int {
	var sp spec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "hostile server:", err)
		return 2
	}
	var opts core.ServerOptions
	if len(sp.Options) > 0 {
		if err := json.Unmarshal(sp.Options, &opts); err != nil {
			fmt.Fprintln(os.Stderr, "hostile server: options:", err)
			return 2
		}
	}
	opts.Logger = hclog.NewNullLogger()
	opts.Codecs = append(opts.Codecs, core.RawCodec{})
	if sp.Token != "" {
		f, err := authfilter.NewFilter(authfilter.Options{Tokens: []string{sp.Token}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostile server:", err)
			return 2
		}
		opts.Filters = append(opts.Filters, f)
	}
	srv, err := core.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile server:", err)
		return 2
	}
	if err := srv.Register("H", svc{}); err != nil {
		fmt.Fprintln(os.Stderr, "hostile server:", err)
		return 2
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile server:", err)
		return 2
	}
	// A settled baseline: what the attack adds is measured from here.
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Printf("ready %s %d\n", ln.Addr(), os.Getpid())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	return 0
}

// server is a running server process.
type server struct {
	addr string
	pid  int
	base int64 // VmRSS at start, bytes
}

func startServer(t *testing.T, sp spec) *server {
	t.Helper()
	raw, err := json.Marshal(sp)
	require.NoError(t, err)
	p := testkit.StartSelf(t, 10*time.Second, serverEnv+"="+string(raw))
	l, ok := p.FirstLine(30 * time.Second)
	require.True(t, ok, "server process did not start within 30s")
	f := strings.Fields(l)
	require.Len(t, f, 3, "server process said %q", l)
	require.Equal(t, "ready", f[0])
	s := &server{addr: f[1]}
	s.pid, err = strconv.Atoi(f[2])
	require.NoError(t, err)
	s.base = s.status(t, "VmRSS")
	return s
}

// status reads a memory figure (VmRSS, VmHWM) of the server from
// /proc/<pid>/status, in bytes.
func (s *server) status(t *testing.T, key string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	require.NoError(t, err, "these tests read the server's memory from /proc (Linux)")
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, s.pid)
	return 0
}

// peakGrowth is how far the server's peak RSS rose above its start.
func (s *server) peakGrowth(t *testing.T) int64 { return s.status(t, "VmHWM") - s.base }

const mib = 1 << 20

// conn is a raw protocol connection: the attacker speaks frames directly.
type conn struct {
	t  *testing.T
	c  net.Conn
	r  *protocol.Reader
	fb protocol.Builder
}

// dial connects from local address from ("" = the default, 127.0.0.1);
// every 127.0.0.0/8 address is loopback on Linux, so from = "127.0.0.2"
// is another peer of the same server.
func dial(t *testing.T, addr, from string) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &conn{t: t, c: c, r: protocol.NewReader(c, 0, 64<<20, 1<<20)}
}

type reqOpts struct {
	stream   bool
	timeout  time.Duration
	auth     string
	compress uint8
}

// request writes a Request frame.
func (c *conn) request(id uint32, method string, body []byte, o reqOpts) {
	var flags uint8
	if o.stream {
		flags = protocol.FlagStream
	}
	c.fb.Begin(protocol.TypeRequest, flags, spi.CodecRaw, o.compress, id)
	c.fb.B = protocol.AppendMethod(c.fb.B, method)
	if o.timeout > 0 {
		c.fb.B = protocol.AppendTimeout(c.fb.B, o.timeout)
	}
	if o.auth != "" {
		var md spi.Metadata
		md.Set(spi.MetaAuthorization, "Bearer "+o.auth)
		c.fb.B = protocol.AppendMD(c.fb.B, &md)
	}
	c.fb.EndMeta()
	c.fb.B = append(c.fb.B, body...)
	c.write(c.fb.Finish())
}

// data writes a StreamData frame.
func (c *conn) data(id uint32, body []byte) {
	c.fb.Begin(protocol.TypeStreamData, 0, spi.CodecRaw, 0, id)
	c.fb.EndMeta()
	c.fb.B = append(c.fb.B, body...)
	c.write(c.fb.Finish())
}

func (c *conn) control(t protocol.Type, id uint32, body []byte) {
	c.write(protocol.AppendControl(nil, t, id, body))
}

func (c *conn) write(b []byte) {
	c.t.Helper()
	_, err := c.c.Write(b)
	require.NoError(c.t, err)
}

// reply is what the server sent for one id.
type reply struct {
	typ  protocol.Type
	id   uint32
	code spi.Code
	msg  string
	body []byte
}

// next reads the next frame that is not a WindowUpdate or StreamData,
// waiting at most d.
func (c *conn) next(d time.Duration) (reply, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	for {
		var f protocol.Frame
		if err := c.r.ReadFrame(&f); err != nil {
			return reply{}, err
		}
		if f.Type == protocol.TypeWindowUpdate || f.Type == protocol.TypeStreamData {
			f.Release()
			continue
		}
		var m protocol.Meta
		_ = protocol.DecodeMeta(f.Meta, &m)
		r := reply{typ: f.Type, id: f.ID, code: m.ErrCode, msg: string(m.ErrMessage), body: append([]byte(nil), f.Body...)}
		f.Release()
		return r, nil
	}
}
