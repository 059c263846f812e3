package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	gzipc "github.com/kiterpc/kite/plugins/compress-gzip"
	s2c "github.com/kiterpc/kite/plugins/compress-s2"
	snappyc "github.com/kiterpc/kite/plugins/compress-snappy"
	zstdc "github.com/kiterpc/kite/plugins/compress-zstd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type seen struct {
	dir      string // "c2s" or "s2c"
	typ      protocol.Type
	compress uint8
	codec    uint8
	bodyLen  uint32
}

// sniffer forwards one TCP connection and records every frame header in
// both directions.
type sniffer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frames []seen
	wg     sync.WaitGroup
}

func newSniffer(t *testing.T, target string) *sniffer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &sniffer{ln: ln, target: target}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				return
			}
			s.wg.Add(2)
			go s.pipe(c, u, "c2s")
			go s.pipe(u, c, "s2c")
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sniffer) pipe(src, dst net.Conn, dir string) {
	defer s.wg.Done()
	defer dst.Close()
	defer src.Close()
	r := protocol.NewReader(src, 0, 64<<20, 0)
	for {
		var f protocol.Frame
		if err := r.ReadFrame(&f); err != nil {
			return
		}
		s.mu.Lock()
		s.frames = append(s.frames, seen{dir: dir, typ: f.Type, compress: f.Compress, codec: f.Codec, bodyLen: f.BodyLen})
		s.mu.Unlock()
		var h [protocol.HeaderSize]byte
		protocol.PutHeader(h[:], &f.Header)
		buf := append(h[:], f.Meta...)
		buf = append(buf, f.Body...)
		f.Release()
		if _, err := dst.Write(buf); err != nil {
			return
		}
	}
}

func (s *sniffer) take() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.frames
	s.frames = nil
	return out
}

type blob struct{}

func (blob) Echo(ctx context.Context, b *[]byte) (*[]byte, error) { return b, nil }

func TestCompressionOnTheWire(t *testing.T) {
	const threshold = 1024
	random := make([]byte, 256<<10)
	_, _ = rand.Read(random)
	compressible := bytes.Repeat([]byte("kite frames are small and fast. "), 1<<15) // 1 MiB
	zs, err := zstdc.NewWithConfig(zstdc.Config{})
	require.NoError(t, err)
	for _, comp := range []spi.Compressor{snappyc.New(), zs, s2c.New(), gzipc.New()} {
		t.Run(comp.Name(), func(t *testing.T) {
			srv, err := core.NewServer(core.ServerOptions{Compressors: []spi.Compressor{comp}, CompressThreshold: threshold, Logger: hclog.NewNullLogger()})
			require.NoError(t, err)
			require.NoError(t, srv.Register("Blob", blob{}))
			ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
			require.NoError(t, err)
			defer srv.Close()
			sn := newSniffer(t, ln.Addr().String())
			c, err := core.NewClient(core.ClientOptions{Targets: []string{sn.ln.Addr().String()}, Codec: core.RawCodec{},
				Compressor: comp, CompressThreshold: threshold, Logger: hclog.NewNullLogger()})
			require.NoError(t, err)
			defer c.Close()

			cases := []struct {
				name       string
				body       []byte
				compressed bool
			}{
				{"0B", []byte{}, false},
				{"1B", []byte{7}, false},
				{"1023B", bytes.Repeat([]byte{'a'}, threshold-1), false},
				{"1KiB", compressible[:threshold], true},
				{"1MiB", compressible, true},
				{"incompressible", random, true},
			}
			for _, tc := range cases {
				var out []byte
				require.NoError(t, c.Call(context.Background(), "Blob.Echo", tc.body, &out), tc.name)
				require.True(t, bytes.Equal(tc.body, out), "%s: body changed in the round trip", tc.name)
				frames := sn.take()
				var req, resp *seen
				for i := range frames {
					switch frames[i].typ {
					case protocol.TypeRequest:
						req = &frames[i]
					case protocol.TypeResponse:
						resp = &frames[i]
					}
				}
				require.NotNil(t, req, tc.name)
				require.NotNil(t, resp, tc.name)
				if tc.compressed {
					require.Equal(t, comp.ID(), req.compress, "%s: request must be compressed", tc.name)
					require.Equal(t, comp.ID(), resp.compress, "%s: response must be compressed", tc.name)
					if tc.name == "1MiB" {
						require.Less(t, int(req.bodyLen), len(tc.body)/4, "1 MiB of repeated text must shrink on the wire")
					}
				} else {
					require.Equal(t, spi.CompressNone, req.compress, "%s: below the threshold the body travels raw", tc.name)
					require.Equal(t, uint32(len(tc.body)), req.bodyLen, tc.name)
					require.Equal(t, spi.CompressNone, resp.compress, tc.name)
				}
			}
		})
	}
}
