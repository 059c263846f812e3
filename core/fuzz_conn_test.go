package core

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// fuzzSvc is what FuzzConnFrames talks to: a unary echo, a bidi echo and
// a stream that never reads. Every handler ends when its call does.
type fuzzSvc struct{}

func (fuzzSvc) Echo(ctx context.Context, b *[]byte) (*[]byte, error) { return b, nil }

func (fuzzSvc) Chat(ctx context.Context, st *Stream) error {
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

func (fuzzSvc) Sink(ctx context.Context, st *Stream) error {
	<-ctx.Done()
	return nil
}

var fuzzMethods = [...]string{"F.Echo", "F.Chat", "F.Sink", "F.Nope"}

// fuzzFrames turns fuzz input into a frame sequence: each op is 3 bytes
// (kind, id, arg) and may take arg bytes of body from the input. Ids come
// from a set of four so that duplicates, data for unknown ids and
// cancels of finished calls are common.
func fuzzFrames(data []byte) []byte {
	var out []byte
	var fb protocol.Builder
	defer fb.Release()
	for len(data) >= 3 {
		kind, id, arg := data[0], uint32(data[1]%4+1), data[2]
		data = data[3:]
		n := min(int(arg%64), len(data))
		body := data[:n]
		switch kind % 9 {
		case 0, 1: // request: unary or stream open, some with a deadline
			method := fuzzMethods[arg%4]
			flags := uint8(0)
			if kind%2 == 1 || method != "F.Echo" {
				flags = protocol.FlagStream
			}
			fb.Begin(protocol.TypeRequest, flags, spi.CodecRaw, 0, id)
			fb.B = protocol.AppendMethod(fb.B, method)
			if arg&0x40 != 0 {
				fb.B = protocol.AppendTimeout(fb.B, time.Duration(arg%8)*time.Millisecond)
			}
			fb.EndMeta()
			if flags == 0 {
				fb.B = append(fb.B, body...)
				data = data[n:]
			}
			out = append(out, fb.Finish()...)
		case 2: // stream data
			fb.Begin(protocol.TypeStreamData, 0, spi.CodecRaw, 0, id)
			fb.EndMeta()
			fb.B = append(fb.B, body...)
			data = data[n:]
			out = append(out, fb.Finish()...)
		case 3: // window update, sometimes malformed
			var w [4]byte
			binary.BigEndian.PutUint32(w[:], uint32(arg))
			if arg&0x80 != 0 {
				out = protocol.AppendControl(out, protocol.TypeWindowUpdate, id, w[:arg%4])
			} else {
				out = protocol.AppendControl(out, protocol.TypeWindowUpdate, id, w[:])
			}
		case 4:
			out = protocol.AppendControl(out, protocol.TypeCancel, id, nil)
		case 5:
			out = protocol.AppendControl(out, protocol.TypeStreamEnd, id, nil)
		case 6:
			out = protocol.AppendControl(out, protocol.TypePing, id, body)
			data = data[n:]
		case 7: // one-way
			fb.Begin(protocol.TypeOneWay, 0, spi.CodecRaw, 0, 0)
			fb.B = protocol.AppendMethod(fb.B, "F.Echo")
			fb.EndMeta()
			fb.B = append(fb.B, body...)
			data = data[n:]
			out = append(out, fb.Finish()...)
		case 8: // a frame the server ignores, or a compressed body it cannot read
			fb.Begin(protocol.TypeRequest, 0, spi.CodecRaw, arg%5, id)
			fb.B = protocol.AppendMethod(fb.B, "F.Echo")
			fb.EndMeta()
			fb.B = append(fb.B, body...)
			data = data[n:]
			out = append(out, fb.Finish()...)
		}
	}
	return out
}

// FuzzConnFrames plays a frame sequence (stream open, data, window,
// cancel, end, ping, one-way, in any order, with duplicate ids) on a live
// loopback connection, then closes it and checks that the server is
// back where it was: no call in flight, no body memory charged, no
// connection, no goroutine beyond its parked workers.
func FuzzConnFrames(f *testing.F) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet, Codecs: []spi.Codec{RawCodec{}},
		StreamIdleTimeout: 50 * time.Millisecond, MaxConnConcurrency: 3, MaxConcurrency: 8, BodyMemory: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Register("F", fuzzSvc{}); err != nil {
		f.Fatal(err)
	}
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	// Seeds: a unary call; a stream with data, window and end; duplicate
	// opens and a cancel; an overrun of the window; a ping.
	f.Add([]byte{0, 1, 0, 'h', 'i'})
	f.Add([]byte{1, 2, 1, 2, 2, 3, 'a', 'b', 'c', 3, 2, 5, 5, 2, 0})
	f.Add([]byte{1, 3, 2, 1, 3, 2, 4, 3, 0, 1, 3, 1})
	overrun := []byte{1, 1, 2}
	for i := 0; i < 20; i++ {
		overrun = append(overrun, 2, 1, 1, 'x')
	}
	f.Add(overrun)
	f.Add([]byte{6, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 7, 0, 2, 'o', 'k'})
	f.Add([]byte{8, 1, 3, 0xff, 0xff, 0xff, 1, 2, 0x41})

	baseG := -1
	f.Fuzz(func(t *testing.T, data []byte) {
		if baseG < 0 {
			// Measured on the first input, so that the fuzzing engine's
			// own goroutines and the one running inputs are counted.
			baseG = runtime.NumGoroutine() - srv.workers.parked()
		}
		frames := fuzzFrames(data)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { // read whatever the server says until it closes
			defer close(done)
			_, _ = io.Copy(io.Discard, c)
		}()
		_, _ = c.Write(frames)
		// Let the server act on the sequence (and on stream deadlines and
		// idle timeouts) before the connection goes.
		time.Sleep(time.Duration(len(data)%4) * 10 * time.Millisecond)
		_ = c.Close()
		<-done

		deadline := time.Now().Add(5 * time.Second)
		for {
			g := runtime.NumGoroutine() - srv.workers.parked()
			if srv.InFlight() == 0 && srv.BodyMemory() == 0 && srv.Conns() == 0 && g <= baseG {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("after close: in flight %d, body memory %d, conns %d, goroutines %d (base %d)\n%s",
					srv.InFlight(), srv.BodyMemory(), srv.Conns(), g, baseG, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond)
		}
	})
}
