package systems

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// The raw system is the practical limit for a multiplexed RPC in Go on
// this machine: no codec, no metadata, no deadlines. A frame is
// [4-byte body length][4-byte call id][body]. Each connection has a
// writer goroutine that drains a queue into a 64 KiB bufio.Writer and
// flushes when the queue is empty (so frames queued together share a
// syscall) and a reader goroutine that dispatches frames by id; the
// server runs one goroutine per request.

func init() {
	register(System{Name: "raw", Doc: "hand-written multiplexed framing, no codec: the practical limit",
		Serve: serveRaw, Dial: dialRaw})
}

const rawHeader = 8

// rawMaxBody bounds a frame body so a corrupt length cannot allocate
// without limit.
const rawMaxBody = 16 << 20

// rawConn is the shared machinery of both sides.
type rawConn struct {
	nc     net.Conn
	queue  chan []byte
	closed chan struct{}
	once   sync.Once
	err    atomic.Pointer[error]
}

func newRawConn(nc net.Conn) *rawConn {
	c := &rawConn{nc: nc, queue: make(chan []byte, 4096), closed: make(chan struct{})}
	go c.writeLoop()
	return c
}

func (c *rawConn) fail(err error) {
	c.once.Do(func() {
		c.err.Store(&err)
		close(c.closed)
		_ = c.nc.Close()
	})
}

func (c *rawConn) send(frame []byte) error {
	select {
	case c.queue <- frame:
		return nil
	case <-c.closed:
		return *c.err.Load()
	}
}

func (c *rawConn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		var f []byte
		select {
		case f = <-c.queue:
		case <-c.closed:
			return
		}
		if _, err := w.Write(f); err != nil {
			c.fail(err)
			return
		}
		// Drain what is queued; flush only when nothing more is waiting.
		for more := true; more; {
			select {
			case f = <-c.queue:
				if _, err := w.Write(f); err != nil {
					c.fail(err)
					return
				}
			default:
				more = false
			}
		}
		if err := w.Flush(); err != nil {
			c.fail(err)
			return
		}
	}
}

// readFrame reads one frame from r into a fresh body slice.
func readFrame(r *bufio.Reader, hdr []byte) (uint32, []byte, error) {
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	id := binary.BigEndian.Uint32(hdr[4:8])
	if n > rawMaxBody {
		return 0, nil, errors.New("raw: frame too large")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return id, body, nil
}

func makeFrame(id uint32, body []byte) []byte {
	f := make([]byte, rawHeader+len(body))
	binary.BigEndian.PutUint32(f[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(f[4:8], id)
	copy(f[rawHeader:], body)
	return f
}

type rawServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[*rawConn]struct{}
	wg    sync.WaitGroup
}

func (s *rawServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.fail(net.ErrClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func serveRaw(ln net.Listener) (Server, error) {
	s := &rawServer{ln: ln, conns: map[*rawConn]struct{}{}}
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
		go func() { _ = c.send(makeFrame(id, body)) }()
	}
}

type rawClient struct {
	c      *rawConn
	nextID atomic.Uint32
	mu     sync.Mutex
	wait   map[uint32]chan []byte
	done   chan struct{}
}

var rawChanPool = sync.Pool{New: func() any { return make(chan []byte, 1) }}

func dialRaw(addr string, _ int) (Client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawClient{c: newRawConn(nc), wait: map[uint32]chan []byte{}, done: make(chan struct{})}
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
		rc.mu.Lock()
		ch := rc.wait[id]
		delete(rc.wait, id)
		rc.mu.Unlock()
		if ch != nil {
			ch <- body
		}
	}
}

func (rc *rawClient) Echo(ctx context.Context, _ int, payload []byte) (int, error) {
	id := rc.nextID.Add(1)
	ch := rawChanPool.Get().(chan []byte)
	rc.mu.Lock()
	rc.wait[id] = ch
	rc.mu.Unlock()
	if err := rc.c.send(makeFrame(id, payload)); err != nil {
		return 0, err
	}
	select {
	case body := <-ch:
		rawChanPool.Put(ch)
		return len(body), nil
	case <-rc.c.closed:
		return 0, *rc.c.err.Load()
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
	return nil
}
