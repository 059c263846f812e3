package core_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/examples/proto-greeter/greeterpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// rawH2 is a hand-driven HTTP/2 client connection for header-block tests.
type rawH2 struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r := &rawH2{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hb)
	_ = r.fr.WriteSettings()
	return r
}

// block encodes a request header block for SayHello plus extra fields.
func (r *rawH2) block(extra ...hpack.HeaderField) []byte {
	r.hb.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: greeterPath + "SayHello"}, {Name: ":authority", Value: "kite"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}}, extra...) {
		if err := r.enc.WriteField(f); err != nil {
			r.t.Fatal(err)
		}
	}
	return append([]byte(nil), r.hb.Bytes()...)
}

func grpcMessage(t *testing.T, name string) []byte {
	b, err := proto.Marshal(&greeterpb.HelloRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// answer reads frames until stream id ends: its grpc-status and message,
// or the RST_STREAM code ("rst:<code>").
func (r *rawH2) answer(id uint32) (string, string) {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("stream %d: no answer: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if st := f.PseudoValue("status"); st != "" && st != "200" {
				return "http:" + st, ""
			}
			var code, msg string
			for _, hf := range f.Fields {
				switch hf.Name {
				case "grpc-status":
					code = hf.Value
				case "grpc-message":
					msg = hf.Value
				}
			}
			if code != "" {
				return code, msg
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "rst:" + f.ErrCode.String(), ""
			}
		case *http2.GoAwayFrame:
			r.t.Fatalf("stream %d: connection ended: GOAWAY %v %q", id, f.ErrCode, f.DebugData())
		}
	}
}

// TestGRPCHeaderBlocks: the server's own header-block decoding (instead
// of the Framer's MetaHeadersFrame) splits CONTINUATIONs, refuses what
// the Framer refuses and keeps the HPACK state in step after a block it
// truncates, on one connection.
func TestGRPCHeaderBlocks(t *testing.T) {
	_, addr, _ := startGRPCServer(t, core.ServerOptions{MaxMetadata: 4096})
	r := dialRawH2(t, addr)
	msg := grpcMessage(t, "raw")

	// 1: the block in a HEADERS and two CONTINUATIONs.
	blk := r.block(hpack.HeaderField{Name: "x-tenant", Value: "t1"})
	a, b := len(blk)/3, 2*len(blk)/3
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:a]})
	_ = r.fr.WriteContinuation(1, false, blk[a:b])
	_ = r.fr.WriteContinuation(1, true, blk[b:])
	_ = r.fr.WriteData(1, true, msg)
	if code, m := r.answer(1); code != "0" {
		t.Fatalf("split block: status %s %q", code, m)
	}

	// 3: an upper-case field name is a stream error (PROTOCOL_ERROR).
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: r.block(hpack.HeaderField{Name: "X-Upper", Value: "v"}), EndHeaders: true, EndStream: true})
	if code, _ := r.answer(3); code != "rst:PROTOCOL_ERROR" {
		t.Fatalf("upper-case header name: %s, want RST_STREAM PROTOCOL_ERROR", code)
	}

	// 5: fields past max_metadata: RESOURCE_EXHAUSTED. They enter the
	// client's HPACK table, so the server must decode them all the same.
	var big []hpack.HeaderField
	for i := range 5 {
		big = append(big, hpack.HeaderField{Name: "x-big-" + string(rune('a'+i)), Value: strings.Repeat("v", 900)})
	}
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: r.block(big...), EndHeaders: true})
	if code, m := r.answer(5); code != "8" || !strings.Contains(m, "max_metadata") {
		t.Fatalf("header list over max_metadata: status %s %q, want 8", code, m)
	}

	// 7: a block referring to the table entries the truncated block made
	// decodes correctly: the HPACK state followed the client's.
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: r.block(big[4]), EndHeaders: true})
	_ = r.fr.WriteData(7, true, msg)
	if code, m := r.answer(7); code != "0" {
		t.Fatalf("after the truncated block: status %s %q", code, m)
	}

	// A pseudo-header after a regular field is a stream error too.
	r.hb.Reset()
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: "te", Value: "trailers"}, {Name: ":path", Value: greeterPath + "SayHello"}} {
		_ = r.enc.WriteField(f)
	}
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: r.hb.Bytes(), EndHeaders: true, EndStream: true})
	if code, _ := r.answer(9); code != "rst:PROTOCOL_ERROR" {
		t.Fatalf("pseudo-header after a regular one: %s", code)
	}
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: r.block(), EndHeaders: true})
	_ = r.fr.WriteData(11, true, msg)
	if code, m := r.answer(11); code != "0" {
		t.Fatalf("last call on the connection: status %s %q", code, m)
	}
}
