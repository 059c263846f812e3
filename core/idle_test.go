package core

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

// TestIdleConnectionMemory holds many connections that each carried one
// small call and checks what the server keeps per idle connection.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("Raw", rawEcho{}); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const n = 1000
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*Client, 0, n)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := NewClient(ClientOptions{Targets: []string{ln.Addr().String()}, Codec: RawCodec{}, Catalog: testCatalog(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		var out []byte
		if err := c.Call(context.Background(), "Raw.Echo", make([]byte, 128), &out); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if p := os.Getenv("KITE_HEAPPROFILE"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	perConn := float64(after.HeapInuse-before.HeapInuse) / n / 1024
	t.Logf("heap in use per idle connection (client and server side together): %.1f KiB; stacks %.1f KiB", perConn, float64(after.StackInuse-before.StackInuse)/n/1024)
	// Today: ~68 KiB for a whole client (32 KiB read buffer, codec tables,
	// pool) plus the server's side (16 KiB read buffer). Eager writer
	// buffers (2 x 32 KiB per side) would push it past 190 KiB.
	if perConn > 100 {
		t.Errorf("idle connection costs %.1f KiB of heap (client+server), want <= 100 KiB", perConn)
	}
	if srv.Conns() != n {
		t.Errorf("server counts %d connections, want %d", srv.Conns(), n)
	}
}
