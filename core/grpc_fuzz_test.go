package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/spi"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// bytesProto stands in for the proto codec (same wire id) and passes
// bytes through, so the fuzz server needs no plugin.
type bytesProto struct{ RawCodec }

func (bytesProto) Name() string { return "proto" }
func (bytesProto) ID() uint8    { return spi.CodecProto }

type fuzzEcho struct{}

func (fuzzEcho) Echo(_ context.Context, req *[]byte) (*[]byte, error) { return req, nil }
func (fuzzEcho) Pipe(_ context.Context, st *Stream) error {
	for {
		var b []byte
		if err := st.Recv(&b); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := st.Send(b); err != nil {
			return err
		}
	}
}

// grpcRequest builds the bytes of a gRPC client connection: preface,
// SETTINGS, a HEADERS frame for path and DATA frames carrying payload
// (split at splitAt) with END_STREAM.
func grpcRequest(path string, payload []byte, splitAt int) []byte {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: path},
		{Name: ":authority", Value: "k"}, {Name: "content-type", Value: "application/grpc"}, {Name: "grpc-timeout", Value: "2S"}} {
		_ = enc.WriteField(f)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	if splitAt < 0 || splitAt > len(payload) {
		splitAt = len(payload)
	}
	_ = fr.WriteData(1, false, payload[:splitAt])
	_ = fr.WriteData(1, true, payload[splitAt:])
	return b.Bytes()
}

func grpcMessage(b []byte) []byte {
	out := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	copy(out[5:], b)
	return out
}

// FuzzGRPCServer feeds a gRPC-enabled server connections that open with
// fuzzed bytes (sniffing), fuzzed HTTP/2 after a valid preface, or fuzzed
// gRPC message framing inside valid HEADERS/DATA frames. The server must
// not panic, must answer or close, must release every admitted call, and
// must still serve a well-formed call afterwards. Sniff must agree with
// itself on every prefix it decides.
func FuzzGRPCServer(f *testing.F) {
	f.Add(uint8(0), []byte("GET / HTTP/1.1\r\n\r\n"), 0)
	f.Add(uint8(0), []byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), 0)
	f.Add(uint8(0), []byte("KT\x01\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0)
	f.Add(uint8(1), []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}, 0)
	// Frames the reader parses in place (readFast) next to the ones it
	// leaves to the Framer: DATA on stream 0, padded DATA, HEADERS that
	// does not end its block followed by DATA, a stray CONTINUATION.
	f.Add(uint8(1), []byte{0, 0, 2, 0, 1, 0, 0, 0, 0, 'h', 'i'}, 0)
	f.Add(uint8(1), []byte{0, 0, 3, 0, 9, 0, 0, 0, 1, 5, 'h', 'i'}, 0)
	f.Add(uint8(1), []byte{0, 0, 1, 1, 0, 0, 0, 0, 1, 0x83, 0, 0, 1, 0, 1, 0, 0, 0, 1, 'x'}, 0)
	f.Add(uint8(1), []byte{0, 0, 1, 1, 4, 0, 0, 0, 1, 0x83, 0, 0, 1, 9, 4, 0, 0, 0, 1, 0x86}, 0)
	f.Add(uint8(2), grpcMessage([]byte("hello")), 3)
	f.Add(uint8(2), []byte{0, 0x7f, 0xff, 0xff, 0xff, 1, 2}, 1)
	f.Add(uint8(2), append(grpcMessage([]byte("a")), grpcMessage([]byte("b"))...), 6)
	f.Add(uint8(3), append(grpcMessage([]byte("a")), grpcMessage([]byte("b"))...), 2)
	f.Fuzz(func(t *testing.T, mode uint8, data []byte, split int) {
		// Sniff: a decided prefix stays decided.
		if got := Sniff(data); got != "" {
			if again := Sniff(append(append([]byte(nil), data...), 'x')); again != got {
				t.Fatalf("Sniff(%q) = %q but %q with one more byte", data, got, again)
			}
		}
		s, err := NewServer(ServerOptions{Codecs: []spi.Codec{bytesProto{}}, Logger: hclog.NewNullLogger(), HandshakeTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnableGRPC(GRPCOptions{MaxMessage: 1 << 16}); err != nil {
			t.Fatal(err)
		}
		if err := s.Register("Echo", fuzzEcho{}); err != nil {
			t.Fatal(err)
		}
		ln, err := s.Listen(context.Background(), "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var in []byte
		switch mode % 4 {
		case 0:
			in = data
		case 1:
			in = append([]byte(http2.ClientPreface), data...)
		case 2:
			in = grpcRequest("/pkg.Echo/Echo", data, split)
		case 3:
			in = grpcRequest("/Echo/Pipe", data, split)
		}
		exchange(t, ln.Addr().String(), in)
		deadline := time.Now().Add(3 * time.Second)
		for s.InFlight() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d calls still admitted after the connection ended", s.InFlight())
			}
			time.Sleep(time.Millisecond)
		}
		// Still healthy: a well-formed call is answered with status 0.
		if !callOK(t, ln.Addr().String()) {
			t.Fatal("a well-formed call after the fuzzed input was not answered")
		}
	})
}

// exchange writes in, half-closes and reads until the server closes.
func exchange(t *testing.T, addr string, in []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(in)
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// callOK makes one well-formed unary call and reports whether it was
// answered with status 0 and the echoed body.
func callOK(t *testing.T, addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(grpcRequest("/Echo/Echo", grpcMessage([]byte("ok")), -1)); err != nil {
		return false
	}
	fr := http2.NewFramer(io.Discard, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var body []byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return false
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			body = append(body, f.Data()...)
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				for _, hf := range f.Fields {
					if hf.Name == "grpc-status" {
						return hf.Value == "0" && bytes.Equal(body, grpcMessage([]byte("ok")))
					}
				}
				return false
			}
		}
	}
}
