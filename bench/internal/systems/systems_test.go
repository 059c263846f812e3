package systems

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gRPC and the HTTP/2 transport end some goroutines
		// asynchronously after Close; they are not ours to wait for.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/transport.(*controlBuffer).get"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestEverySystemEchoes runs each system's server and client over real
// loopback with concurrent callers and checks every answer.
func TestEverySystemEchoes(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			sys, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := sys.Serve(ln)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			const conc = 8
			cl, err := sys.Dial(ln.Addr().String(), conc)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, conc)
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i, size := range []int{0, 1, 128, 1024, 64 << 10} {
						p := bytes.Repeat([]byte{byte('a' + i)}, size)
						n, err := cl.Echo(ctx, w, p)
						if err != nil {
							errs <- err
							return
						}
						if n != size {
							t.Errorf("%s: echo of %d bytes answered %d", name, size, n)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

// TestStreamsEcho checks the stream adapters of the systems that have
// them: every message sent comes back in order.
func TestStreamsEcho(t *testing.T) {
	for _, name := range []string{"kite", "grpc"} {
		t.Run(name, func(t *testing.T) {
			sys, _ := Lookup(name)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := sys.Serve(ln)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cl, err := sys.Dial(ln.Addr().String(), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st, err := cl.(Streamer).OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			const msgs = 500 // several flow-control windows
			done := make(chan error, 1)
			go func() {
				for i := 0; i < msgs; i++ {
					if err := st.Send(make([]byte, i%300)); err != nil {
						done <- err
						return
					}
				}
				done <- st.CloseSend()
			}()
			for i := 0; i < msgs; i++ {
				n, err := st.Recv()
				if err != nil {
					t.Fatalf("recv %d: %v", i, err)
				}
				if n != i%300 {
					t.Fatalf("message %d: got %d bytes, want %d", i, n, i%300)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
