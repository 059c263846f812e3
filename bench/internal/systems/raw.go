package systems

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The raw system is the ceiling for a multiplexed RPC in Go on this
// machine: Kite's transport techniques with nothing else — no codec, no
// metadata, no deadlines, no filters, no limits. A frame is
// [4-byte body length][4-byte call id][body].
//
// It does what Kite's runtime does on its hot path, so Kite can approach
// it but not beat it by technique alone:
//   - write batching as core's batchWriter does it: frames are appended to
//     a pending buffer under a short lock; one writer goroutine yields
//     (runtime.Gosched) before taking the batch, so goroutines that are
//     about to produce frames land in the same write(2), then writes it
//     whole. A connection with at most one call in progress writes from
//     the caller's goroutine instead, saving the handoff.
//   - handler goroutine reuse as core's server does it: a request is
//     handed to a parked worker when one waits, else a new one starts;
//     up to rawMaxIdleWorkers park for rawWorkerIdle.
//   - pooled read buffers on both sides, and a bounded pending buffer
//     (writers wait above rawMaxPending), as core does.

func init() {
	register(System{Name: "raw", Doc: "hand-written multiplexed framing with Kite's write batching and worker reuse, no codec: the ceiling",
		Serve: serveRaw, Dial: dialRaw})
}

const rawHeader = 8

// rawMaxBody bounds a frame body so a corrupt length cannot allocate
// without limit.
const rawMaxBody = 16 << 20

// rawMaxPending bounds the bytes queued on one connection (core's
// maxPending).
const rawMaxPending = 4 << 20

// Worker reuse bounds, core's workerIdle and maxIdleWorkers.
const (
	rawWorkerIdle     = 2 * time.Second
	rawMaxIdleWorkers = 256
)

var rawBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getRawBuf(n int) *[]byte {
	bp := rawBufPool.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	*bp = (*bp)[:n]
	return bp
}

func putRawBuf(bp *[]byte) {
	if cap(*bp) > 256<<10 {
		return // do not keep a large frame's buffer around
	}
	rawBufPool.Put(bp)
}

// rawConn is the shared machinery of both sides: the batching writer.
type rawConn struct {
	nc net.Conn
	// active counts calls in progress on the connection (server: handlers
	// running; client: calls awaiting their answer); at most one means
	// quiet, and a sender writes directly.
	active atomic.Int32

	mu      sync.Mutex
	cond    sync.Cond
	pending []byte
	err     error
	writing bool
	waiting int

	signal chan struct{}
	closed chan struct{}
	done   chan struct{} // the writer loop has exited
	once   sync.Once
}

func newRawConn(nc net.Conn) *rawConn {
	c := &rawConn{nc: nc, signal: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	c.cond.L = &c.mu
	go c.writeLoop()
	return c
}

func (c *rawConn) fail(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.closed)
		_ = c.nc.Close()
	})
}

func (c *rawConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// send queues the frame (id, body); body is copied before it returns.
func (c *rawConn) send(id uint32, body []byte) error {
	var hdr [rawHeader]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(hdr[4:8], id)
	c.mu.Lock()
	for c.err == nil && len(c.pending) > rawMaxPending {
		c.waiting++
		c.cond.Wait()
		c.waiting--
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if !c.writing && len(c.pending) == 0 && c.active.Load() <= 1 {
		// Quiet connection: write from this goroutine.
		c.writing = true
		c.mu.Unlock()
		bp := getRawBuf(rawHeader + len(body))
		copy(*bp, hdr[:])
		copy((*bp)[rawHeader:], body)
		_, err := c.nc.Write(*bp)
		putRawBuf(bp)
		c.mu.Lock()
		c.writing = false
		more := len(c.pending) > 0
		if c.waiting > 0 {
			c.cond.Broadcast()
		}
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
			return err
		}
		if more {
			c.kick()
		}
		return nil
	}
	wasEmpty := len(c.pending) == 0
	c.pending = append(c.pending, hdr[:]...)
	c.pending = append(c.pending, body...)
	c.mu.Unlock()
	if wasEmpty {
		c.kick()
	}
	return nil
}

func (c *rawConn) kick() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *rawConn) writeLoop() {
	defer close(c.done)
	var spare []byte
	for {
		select {
		case <-c.signal:
		case <-c.closed:
			return
		}
		// Let the goroutines about to produce frames run first, so they
		// land in this batch.
		runtime.Gosched()
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		if c.writing {
			// A sender writes directly; it kicks when it is done and
			// frames wait.
			c.mu.Unlock()
			continue
		}
		buf := c.pending
		c.pending = spare[:0]
		c.writing = len(buf) > 0
		if c.waiting > 0 {
			c.cond.Broadcast()
		}
		c.mu.Unlock()
		if len(buf) == 0 {
			spare = buf
			continue
		}
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		c.writing = false
		more := len(c.pending) > 0
		if c.waiting > 0 {
			c.cond.Broadcast()
		}
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
			return
		}
		if cap(buf) > 256<<10 {
			buf = nil
		}
		spare = buf[:0]
		if more {
			c.kick()
		}
	}
}

// readFrame reads one frame from r into a pooled buffer; the caller
// returns it with putRawBuf.
func readFrame(r *bufio.Reader, hdr []byte) (uint32, *[]byte, error) {
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	id := binary.BigEndian.Uint32(hdr[4:8])
	if n > rawMaxBody {
		return 0, nil, errors.New("raw: frame too large")
	}
	bp := getRawBuf(int(n))
	if _, err := io.ReadFull(r, *bp); err != nil {
		putRawBuf(bp)
		return 0, nil, err
	}
	return id, bp, nil
}

type rawTask struct {
	c    *rawConn
	id   uint32
	body *[]byte
}

type rawServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[*rawConn]struct{}
	wg    sync.WaitGroup

	tasks       chan rawTask
	stopWorkers chan struct{}
	idleWorkers atomic.Int32
	workers     sync.WaitGroup
	spawned     atomic.Int64 // worker goroutines started, for tests
}

func (s *rawServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.fail(net.ErrClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	close(s.stopWorkers)
	s.workers.Wait()
	return err
}

func serveRaw(ln net.Listener) (Server, error) {
	s := &rawServer{ln: ln, conns: map[*rawConn]struct{}{}, tasks: make(chan rawTask), stopWorkers: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := newRawConn(nc)
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(c)
				<-c.done
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *rawServer) serveConn(c *rawConn) {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	hdr := make([]byte, rawHeader)
	for {
		id, body, err := readFrame(r, hdr)
		if err != nil {
			c.fail(err)
			return
		}
		c.active.Add(1)
		t := rawTask{c: c, id: id, body: body}
		select {
		case s.tasks <- t:
		default:
			s.workers.Add(1)
			s.spawned.Add(1)
			go s.worker(t)
		}
	}
}

// handle is the echo handler: the answer is queued (copied) and the
// request's buffer goes back to the pool.
func (t rawTask) handle() {
	_ = t.c.send(t.id, *t.body)
	putRawBuf(t.body)
	t.c.active.Add(-1)
}

func (s *rawServer) worker(t rawTask) {
	defer s.workers.Done()
	t.handle()
	idle := time.NewTimer(rawWorkerIdle)
	defer idle.Stop()
	for {
		if s.idleWorkers.Add(1) > rawMaxIdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		idle.Reset(rawWorkerIdle)
		select {
		case t = <-s.tasks:
			s.idleWorkers.Add(-1)
			t.handle()
			continue
		case <-idle.C:
		case <-s.stopWorkers:
		}
		s.idleWorkers.Add(-1)
		return
	}
}

type rawClient struct {
	c      *rawConn
	nextID atomic.Uint32
	mu     sync.Mutex
	wait   map[uint32]chan int
	done   chan struct{}
}

var rawChanPool = sync.Pool{New: func() any { return make(chan int, 1) }}

func dialRaw(addr string, _ int) (Client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawClient{c: newRawConn(nc), wait: map[uint32]chan int{}, done: make(chan struct{})}
	go rc.readLoop()
	return rc, nil
}

func (rc *rawClient) readLoop() {
	defer close(rc.done)
	r := bufio.NewReaderSize(rc.c.nc, 64<<10)
	hdr := make([]byte, rawHeader)
	for {
		id, body, err := readFrame(r, hdr)
		if err != nil {
			rc.c.fail(err)
			return
		}
		n := len(*body)
		putRawBuf(body)
		rc.mu.Lock()
		ch := rc.wait[id]
		delete(rc.wait, id)
		rc.mu.Unlock()
		if ch != nil {
			ch <- n
		}
	}
}

func (rc *rawClient) Echo(ctx context.Context, _ int, payload []byte) (int, error) {
	id := rc.nextID.Add(1)
	ch := rawChanPool.Get().(chan int)
	rc.mu.Lock()
	rc.wait[id] = ch
	rc.mu.Unlock()
	rc.c.active.Add(1)
	defer rc.c.active.Add(-1)
	if err := rc.c.send(id, payload); err != nil {
		return 0, err
	}
	select {
	case n := <-ch:
		rawChanPool.Put(ch)
		return n, nil
	case <-rc.c.closed:
		return 0, rc.c.failure()
	case <-ctx.Done():
		rc.mu.Lock()
		delete(rc.wait, id)
		rc.mu.Unlock()
		return 0, ctx.Err()
	}
}

func (rc *rawClient) Close() error {
	rc.c.fail(net.ErrClosed)
	<-rc.done
	<-rc.c.done
	return nil
}
