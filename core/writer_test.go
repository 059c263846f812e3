package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// patternSource is the content frames are cut from: every frame's body is
// a different window of it, so a body that lands in another frame's place,
// or is overwritten, no longer matches.
var patternSource = func() []byte {
	b := make([]byte, 1<<20+4096)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

// bodyFor is the body of frame seq from sender g, n bytes long.
func bodyFor(g, seq, n int) []byte {
	off := (g*7919 + seq*104729) % 4096
	return patternSource[off : off+n]
}

// buildFrame builds a StreamData frame (id = g<<16 | seq) with that body.
func buildFrame(fb *protocol.Builder, g, seq, n int) {
	fb.Begin(protocol.TypeStreamData, 0, spi.CodecRaw, 0, uint32(g<<16|seq))
	fb.EndMeta()
	fb.B = append(fb.B, bodyFor(g, seq, n)...)
}

// scribblePools takes buffers of every pool class, overwrites them whole
// and puts them back: a frame still queued in a buffer that went back to
// the pool would be corrupted by this.
func scribblePools() {
	for _, n := range []int{4 << 10, 32 << 10, 256 << 10, 1 << 20} {
		for range 2 {
			bp := protocol.GetBuffer(n)
			b := (*bp)[:cap(*bp)]
			for len(b) > 0 {
				b = b[copy(b, scribble):]
			}
			protocol.PutBuffer(bp)
		}
	}
}

var scribble = bytes.Repeat([]byte{0xEE}, 64<<10)

// tcpPair returns both ends of a loopback TCP connection with small kernel
// buffers, so that a few hundred KiB fill the socket and later frames stay
// queued in the writer.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	require.NotNil(t, s)
	client, server = c.(*net.TCPConn), s.(*net.TCPConn)
	require.NoError(t, client.SetWriteBuffer(16<<10))
	require.NoError(t, server.SetReadBuffer(16<<10))
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

// frameSizes cycles small and large frames, so batches mix copied runs and
// frames written in place.
var frameSizes = []int{64, 40 << 10, 700, 200 << 10, 16, 33 << 10, 33 << 10, 2000}

// TestWriterLargeFramesOwnership sends interleaved small and large frames
// from several goroutines through a writer whose socket is full, recycling
// every Builder and scribbling over the buffer pool after each send. The
// reader must see every frame intact, unsplit, and in each sender's order.
// A writer that queued a large frame by reference but let the caller's
// Release return its buffer to the pool fails here: the scribbling
// overwrites the queued bytes.
func TestWriterLargeFramesOwnership(t *testing.T) {
	cw, sr := tcpPair(t)
	var onErr []error
	var errMu sync.Mutex
	w := newBatchWriter(cw, func(err error) { errMu.Lock(); onErr = append(onErr, err); errMu.Unlock() },
		func() bool { return false }) // always queue: this test is about the queue
	var wg sync.WaitGroup
	defer wg.Wait()                        // runs second: no sender outlives the test
	defer w.close(errors.New("test over")) // runs first: unblocks the senders

	const senders, perSender = 4, 24
	// Phase 1 (nothing read yet): the first frames fill the socket and the
	// rest stay queued while their senders' Builders are recycled.
	// Phase 2 runs with the reader draining, through backpressure.
	const phase1 = 8
	var phase1Done sync.WaitGroup
	phase1Done.Add(senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var fb protocol.Builder
			defer fb.Release()
			for seq := range perSender {
				n := frameSizes[(g+seq)%len(frameSizes)]
				buildFrame(&fb, g, seq, n)
				var err error
				if seq%5 == 4 {
					// The copying entry point: the caller's slice is
					// overwritten as soon as write returns.
					frame := fb.Finish()
					err = w.write(frame)
					clear(frame)
				} else {
					err = w.writeBuilt(&fb)
				}
				if err != nil {
					t.Errorf("sender %d frame %d: %v", g, seq, err)
					return
				}
				fb.Release()
				scribblePools()
				if seq == phase1-1 {
					phase1Done.Done()
				}
			}
		}()
	}
	phase1Done.Wait()
	// Phase 1 is far more than the socket holds: the writer is blocked
	// in a write, frames queued behind it.
	w.mu.Lock()
	busy := w.queued > 0 || w.writing
	w.mu.Unlock()
	require.True(t, busy, "frames should be held by the writer behind the full socket")

	r := protocol.NewReader(sr, 16<<10, 4<<20, 64<<10)
	next := make([]int, senders)
	for range senders * perSender {
		var f protocol.Frame
		require.NoError(t, sr.SetReadDeadline(time.Now().Add(10*time.Second)))
		require.NoError(t, r.ReadFrame(&f))
		g, seq := int(f.ID>>16), int(f.ID&0xffff)
		require.Less(t, g, senders)
		require.Equal(t, next[g], seq, "sender %d: frames out of order", g)
		next[g]++
		want := bodyFor(g, seq, frameSizes[(g+seq)%len(frameSizes)])
		if !bytes.Equal(want, f.Body) {
			t.Fatalf("sender %d frame %d (%d bytes): body corrupted", g, seq, len(want))
		}
		f.Release()
	}
	wg.Wait()
	w.drain()
	errMu.Lock()
	require.Empty(t, onErr)
	errMu.Unlock()
}

// recordConn is a net.Conn that records each Write and can hold writes at
// a gate, so a test controls exactly what the writer has queued. Not being
// a *net.TCPConn, it gets net.Buffers' fallback: one Write per vector
// element, which lets the test see the vector.
type recordConn struct {
	net.Conn // nil: only Write and Close are used

	entered chan struct{} // receives when a Write starts
	gate    chan struct{} // a Write waits for a value (or close) here
	fail    error         // returned by Write once set (guarded by mu)

	mu     sync.Mutex
	writes [][]byte
	closed chan struct{}
	once   sync.Once
}

func newRecordConn() *recordConn {
	return &recordConn{entered: make(chan struct{}, 64), gate: make(chan struct{}), closed: make(chan struct{})}
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.entered <- struct{}{}
	select {
	case <-c.gate:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (c *recordConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *recordConn) recorded() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.writes...)
}

// frameBytes builds a frame and returns a copy of its bytes.
func frameBytes(g, seq, n int) []byte {
	var fb protocol.Builder
	defer fb.Release()
	buildFrame(&fb, g, seq, n)
	return append([]byte(nil), fb.Finish()...)
}

// TestWriterVectorKeepsOrderAndBatches checks the shape of one batch:
// small frames queued next to each other travel as one element, each
// large frame as its own element in its place, all in one vectored write.
func TestWriterVectorKeepsOrderAndBatches(t *testing.T) {
	c := newRecordConn()
	w := newBatchWriter(c, nil, func() bool { return false })
	defer w.close(errors.New("test over"))

	send := func(seq, n int) []byte {
		var fb protocol.Builder
		buildFrame(&fb, 0, seq, n)
		require.NoError(t, w.writeBuilt(&fb))
		fb.Release()
		return frameBytes(0, seq, n)
	}
	first := send(0, 100)
	<-c.entered // the writer is now held in its first Write
	s1, s2 := send(1, 100), send(2, 200)
	l1 := send(3, 64<<10)
	l2 := send(4, largeFrame-protocol.HeaderSize) // exactly largeFrame: in place
	s3 := send(5, largeFrame-protocol.HeaderSize-1)
	s4 := send(6, 10)
	l3 := send(7, 1<<20)
	// One gate per Write: the first frame, then the vector's five elements.
	for range 6 {
		c.gate <- struct{}{}
	}
	w.drain()
	got := c.recorded()
	want := [][]byte{first, append(s1, s2...), l1, l2, append(s3, s4...), l3}
	require.Equal(t, len(want), len(got), "writes")
	for i := range want {
		require.True(t, bytes.Equal(want[i], got[i]), "write %d differs", i)
	}
}

// TestWriterSmallFramesStillOneWrite checks that frames below the
// threshold are still copied into one buffer: many queued frames, one
// Write after the one in progress.
func TestWriterSmallFramesStillOneWrite(t *testing.T) {
	c := newRecordConn()
	w := newBatchWriter(c, nil, func() bool { return false })
	defer w.close(errors.New("test over"))
	var all []byte
	for seq := range 50 {
		var fb protocol.Builder
		buildFrame(&fb, 1, seq, 1000)
		all = append(all, fb.Finish()...)
		require.NoError(t, w.writeBuilt(&fb))
		fb.Release()
		if seq == 0 {
			<-c.entered
		}
	}
	c.gate <- struct{}{}
	c.gate <- struct{}{}
	w.drain()
	got := c.recorded()
	require.Len(t, got, 2)
	require.True(t, bytes.Equal(all, append(got[0], got[1]...)))
}

// TestWriterQuietLargeFrameWritesDirectly: on a quiet connection a large
// frame is written from the caller's goroutine and the caller keeps its
// buffer (nothing is detached from the Builder).
func TestWriterQuietLargeFrameWritesDirectly(t *testing.T) {
	c := newRecordConn()
	w := newBatchWriter(c, nil, func() bool { return true })
	defer w.close(errors.New("test over"))
	var fb protocol.Builder
	defer fb.Release()
	buildFrame(&fb, 2, 1, 100<<10)
	want := frameBytes(2, 1, 100<<10)
	done := make(chan error, 1)
	go func() { done <- w.writeBuilt(&fb) }()
	<-c.entered
	c.gate <- struct{}{}
	require.NoError(t, <-done)
	require.NotNil(t, fb.B, "a direct write must leave the buffer with the caller")
	got := c.recorded()
	require.Len(t, got, 1)
	require.True(t, bytes.Equal(want, got[0]))
}

// TestWriterFailureWithLargeFramesQueued: a write failure with large
// frames queued is reported once through onError as Unavailable; later
// sends fail with that status and leave the Builder's buffer with the
// caller; drain and close return.
func TestWriterFailureWithLargeFramesQueued(t *testing.T) {
	c := newRecordConn()
	reported := make(chan error, 4)
	w := newBatchWriter(c, func(err error) { reported <- err }, func() bool { return false })
	var fb protocol.Builder
	defer fb.Release()
	buildFrame(&fb, 3, 0, 100)
	require.NoError(t, w.writeBuilt(&fb))
	<-c.entered
	for seq := 1; seq <= 3; seq++ {
		buildFrame(&fb, 3, seq, 64<<10)
		require.NoError(t, w.writeBuilt(&fb))
		require.Nil(t, fb.B, "a queued large frame belongs to the writer")
	}
	c.mu.Lock()
	c.fail = errors.New("connection reset by peer")
	c.mu.Unlock()
	close(c.gate) // every Write from now on fails
	drained := make(chan struct{})
	go func() { w.drain(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not return after the writer failed")
	}
	var err error
	select {
	case err = <-reported:
	case <-time.After(10 * time.Second):
		t.Fatal("write failure not reported")
	}
	require.ErrorContains(t, err, "connection reset by peer")

	buildFrame(&fb, 3, 4, 64<<10)
	err = w.writeBuilt(&fb)
	require.Error(t, err)
	require.Equal(t, spi.Unavailable, spi.AsError(err).Code)
	require.NotNil(t, fb.B, "a refused frame stays with the caller")
	w.close(err)
	require.Len(t, reported, 0, "reported more than once")
}

// TestWriterCloseUnblocksLargeWrite: close while a vector with large
// frames is held in the kernel (peer not reading) returns promptly.
func TestWriterCloseUnblocksLargeWrite(t *testing.T) {
	cw, _ := tcpPair(t)
	w := newBatchWriter(cw, nil, func() bool { return false })
	var fb protocol.Builder
	defer fb.Release()
	for seq := range 8 {
		buildFrame(&fb, 4, seq, 256<<10)
		require.NoError(t, w.writeBuilt(&fb))
		fb.Release()
	}
	closed := make(chan struct{})
	go func() { w.close(errors.New("shutting down")); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return while a large write was blocked")
	}
	buildFrame(&fb, 4, 9, 64<<10)
	require.Error(t, w.writeBuilt(&fb))
}

// rawSvc echoes raw bytes, unary and streaming.
type rawSvc struct{}

func (rawSvc) Echo(ctx context.Context, b *[]byte) (*[]byte, error) { return b, nil }

func (rawSvc) Chat(ctx context.Context, st *Stream) error {
	for {
		var b []byte
		err := st.Recv(&b)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(b); err != nil {
			return err
		}
	}
}

// TestLargeBodiesEndToEnd runs unary calls and streams with bodies on both
// sides of the threshold concurrently over one connection, so both the
// client's and the server's writers queue large frames next to small ones,
// and checks every byte that comes back.
func TestLargeBodiesEndToEnd(t *testing.T) {
	srv, err := NewServer(ServerOptions{Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Raw", rawSvc{}))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer srv.Close()
	c, err := NewClient(ClientOptions{Targets: []string{ln.Addr().String()}, Codec: RawCodec{}, Catalog: testCatalog(), Logger: quiet})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sizes := []int{100, 40 << 10, 1000, 300 << 10, 0, 33 << 10}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp []byte
			for i := range 12 {
				req := bodyFor(g, i, sizes[(g+i)%len(sizes)])
				if err := c.Call(ctx, "Raw.Echo", req, &resp); err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
					return
				}
				if !bytes.Equal(req, resp) {
					errs <- fmt.Errorf("caller %d call %d: %d bytes back, corrupted", g, i, len(req))
					return
				}
			}
		}()
	}
	for g := 10; g < 12; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Stream(ctx, "Raw.Chat")
			if err != nil {
				errs <- err
				return
			}
			const msgs = 20
			sendErr := make(chan error, 1)
			go func() {
				for i := range msgs {
					if err := st.Send(bodyFor(g, i, sizes[(g+i)%len(sizes)])); err != nil {
						sendErr <- err
						return
					}
				}
				sendErr <- st.CloseSend()
			}()
			for i := range msgs {
				var b []byte
				if err := st.Recv(&b); err != nil {
					errs <- fmt.Errorf("stream %d message %d: %w", g, i, err)
					return
				}
				if want := bodyFor(g, i, sizes[(g+i)%len(sizes)]); !bytes.Equal(want, b) {
					errs <- fmt.Errorf("stream %d message %d: corrupted or out of order", g, i)
					return
				}
			}
			if err := <-sendErr; err != nil {
				errs <- err
				return
			}
			if err := st.Recv(new([]byte)); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("stream %d end: %v", g, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBuilderDetach: after Detach the Builder forgets its buffer, so
// Release cannot put a buffer the new owner still uses back in the pool.
func TestBuilderDetach(t *testing.T) {
	var fb protocol.Builder
	buildFrame(&fb, 5, 1, 50<<10)
	want := frameBytes(5, 1, 50<<10)
	frame, buf := fb.Detach()
	require.True(t, bytes.Equal(want, frame))
	require.NotNil(t, buf)
	require.Nil(t, fb.B)
	fb.Release() // no-op
	scribblePools()
	require.True(t, bytes.Equal(want, frame), "the detached frame was recycled")
	require.Equal(t, uint32(50<<10), binary.BigEndian.Uint32(frame[16:20]))
	// The Builder is usable again with a fresh buffer.
	buildFrame(&fb, 5, 2, 10)
	require.Len(t, fb.Finish(), protocol.HeaderSize+10)
	fb.Release()
	protocol.PutBuffer(buf)
}
