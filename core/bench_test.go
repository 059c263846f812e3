package core

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
)

type rawEcho struct{}

func (rawEcho) Echo(ctx context.Context, b *[]byte) (*[]byte, error) { return b, nil }

// benchPair starts a server with a raw-bytes echo (so the figures measure
// the runtime, not a codec) and a client over one TCP connection.
func benchPair(b *testing.B) *Client {
	b.Helper()
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Register("Raw", rawEcho{}); err != nil {
		b.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(ClientOptions{Targets: []string{ln.Addr().String()}, Codec: RawCodec{}, Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		_ = srv.Close()
	})
	return c
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op (client and server
// together), a figure that stays meaningful when other work shares the
// machine and wall time does not.
func reportCPU(b *testing.B) func() {
	cpu0 := processCPU()
	return func() {
		if cpu := processCPU() - cpu0; cpu > 0 && b.N > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkEcho1KiB is a 1 KiB echo round trip over loopback TCP with one
// caller: the latency floor of a call.
func BenchmarkEcho1KiB(b *testing.B) {
	c := benchPair(b)
	req := make([]byte, 1024)
	var resp []byte
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(2048)
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho1KiBParallel100 runs 100 concurrent callers over the same
// single connection: throughput with multiplexing and write batching.
func BenchmarkEcho1KiBParallel100(b *testing.B) {
	c := benchPair(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(2048)
	b.SetParallelism(100 / max(1, testingProcs()))
	var failed atomic.Int64
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		req := make([]byte, 1024)
		var resp []byte
		for pb.Next() {
			if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
				failed.Add(1)
			}
		}
	})
	if failed.Load() > 0 {
		b.Fatalf("%d calls failed", failed.Load())
	}
}

// BenchmarkEcho1KiBJSON is the sync round trip with a 1 KiB JSON body
// (printable text, so the encoded request is 1 KiB and not the ~6 KB that
// 1000 zero bytes escape to), to show what a codec adds on top of the
// runtime.
func BenchmarkEcho1KiBJSON(b *testing.B) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Register("Echo", newEchoSvc()); err != nil {
		b.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(ClientOptions{Targets: []string{ln.Addr().String()}, Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	defer c.Close()
	req := &EchoReq{ID: 1, Text: strings.Repeat("kite", 256)}
	enc, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(enc); n < 1024 || n > 1100 {
		b.Fatalf("request encodes to %d bytes of JSON, want about 1 KiB", n)
	}
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(enc)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var resp EchoResp
		if err := c.Call(context.Background(), "Echo.Echo", req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEchoLarge runs echo calls of size bytes from callers concurrent
// goroutines over one connection. One caller exercises the quiet path (the
// caller writes directly); several make the writer queue frames, which is
// where a large frame used to be copied into the batch buffer.
func benchEchoLarge(b *testing.B, size, callers int) {
	c := benchPair(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(2 * size))
	var failed atomic.Int64
	b.ResetTimer()
	defer reportCPU(b)()
	if callers == 1 {
		req := make([]byte, size)
		var resp []byte
		for i := 0; i < b.N; i++ {
			if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(max(1, callers/max(1, testingProcs())))
	b.RunParallel(func(pb *testing.PB) {
		req := make([]byte, size)
		var resp []byte
		for pb.Next() {
			if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
				failed.Add(1)
			}
		}
	})
	if failed.Load() > 0 {
		b.Fatalf("%d calls failed", failed.Load())
	}
}

// BenchmarkEcho64KiB and BenchmarkEcho1MiB: one caller, large bodies.
func BenchmarkEcho64KiB(b *testing.B) { benchEchoLarge(b, 64<<10, 1) }
func BenchmarkEcho1MiB(b *testing.B)  { benchEchoLarge(b, 1<<20, 1) }

// BenchmarkEcho64KiBParallel16 and BenchmarkEcho1MiBParallel4: several
// callers on one connection, so large frames are queued behind others (4
// callers of 1 MiB keep about maxPending in flight each way).
func BenchmarkEcho64KiBParallel16(b *testing.B) { benchEchoLarge(b, 64<<10, 16) }
func BenchmarkEcho1MiBParallel4(b *testing.B)   { benchEchoLarge(b, 1<<20, 4) }
