package faultproxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the largest read forwarded as one chunk.
const chunkSize = 32 << 10

// queueLen bounds the chunks in flight per direction (delayed chunks
// included): a reader that gets this far ahead waits, so a slow consumer
// slows the producer as TCP would.
const queueLen = 256

// DialTimeout bounds the proxy's dial of the target for each accepted
// connection.
var DialTimeout = 2 * time.Second

// Proxy forwards loopback TCP connections to a target through faults.
// It is safe for concurrent use.
type Proxy struct {
	ln      net.Listener
	ctx     context.Context // ends on Close; bounds dials
	cancel  context.CancelFunc
	version atomic.Uint64
	global  atomic.Pointer[setting]
	nextID  atomic.Uint64

	accepted atomic.Int64
	refused  atomic.Int64

	mu      sync.Mutex
	target  string
	conns   map[*Conn]struct{}
	changed chan struct{} // closed and replaced when conns changes
	closed  bool

	wg sync.WaitGroup
}

// New starts a proxy on a free loopback port forwarding to target.
func New(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen starts a proxy on addr forwarding to target.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln: ln, ctx: ctx, cancel: cancel, target: target,
		conns:   make(map[*Conn]struct{}),
		changed: make(chan struct{}),
	}
	p.global.Store(&setting{Fault: Pass(), version: p.version.Add(1)})
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address connections are forwarded to.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget changes where new connections are forwarded (a restarted
// server on another port); existing connections keep their target.
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Set installs f for the whole proxy: every connection without a fault of
// its own, and every connection accepted from now on. A Cut closes the
// affected connections at once; a BlackHole silences them at once.
func (p *Proxy) Set(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	p.global.Store(&setting{Fault: f, version: p.version.Add(1)})
	for _, c := range p.Conns() {
		c.enforce()
	}
	return nil
}

// Fault returns the proxy-wide fault.
func (p *Proxy) Fault() Fault { return p.global.Load().Fault }

// MustSet is Set for faults known to be valid; it panics otherwise.
func (p *Proxy) MustSet(f Fault) {
	if err := p.Set(f); err != nil {
		panic(err)
	}
}

// CloseConns closes every open connection (a one-off cut) and returns how
// many it closed; new connections are accepted as the fault in force says.
func (p *Proxy) CloseConns() int {
	cs := p.Conns()
	for _, c := range cs {
		c.Close()
	}
	return len(cs)
}

// Conns returns the open connections, oldest first.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	out := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	p.mu.Unlock()
	sortConns(out)
	return out
}

func sortConns(cs []*Conn) {
	// Insertion sort: the lists are short.
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].id < cs[j-1].id; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// WaitConns waits until at least n connections are open and returns them,
// oldest first.
func (p *Proxy) WaitConns(ctx context.Context, n int) ([]*Conn, error) {
	for {
		p.mu.Lock()
		ch, closed, have := p.changed, p.closed, len(p.conns)
		p.mu.Unlock()
		if have >= n {
			return p.Conns(), nil
		}
		if closed {
			return nil, net.ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Accepted counts the connections accepted so far, refused ones included.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Refused counts the connections closed on arrival because a Cut was in
// force or the target could not be dialed.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	p.notifyLocked()
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.CloseConns()
	p.wg.Wait()
	return err
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.accepted.Add(1)
		g := p.global.Load()
		if g.Mode == ModeCut {
			p.refused.Add(1)
			_ = nc.Close()
			continue
		}
		c := &Conn{p: p, id: p.nextID.Add(1), down: nc, done: make(chan struct{})}
		if !p.track(c) {
			_ = nc.Close()
			return
		}
		p.wg.Add(1)
		go c.start(g.Mode == ModeBlackHole)
	}
}

func (p *Proxy) track(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	p.notifyLocked()
	return true
}

func (p *Proxy) untrack(c *Conn) {
	p.mu.Lock()
	if _, ok := p.conns[c]; ok {
		delete(p.conns, c)
		p.notifyLocked()
	}
	p.mu.Unlock()
}

// Conn is one proxied connection: the accepted client side and, unless it
// was black-holed on arrival, the dialed target side.
type Conn struct {
	p    *Proxy
	id   uint64
	down net.Conn // the client's connection to the proxy

	override   atomic.Pointer[setting] // nil: the proxy's fault
	blackholed atomic.Bool
	forwarded  [3]atomic.Int64 // by Direction

	mu        sync.Mutex
	up        net.Conn // the proxy's connection to the target; nil until dialed
	closeOnce sync.Once
	done      chan struct{}
}

// ID numbers connections in accept order, from 1.
func (c *Conn) ID() uint64 { return c.id }

// ClientAddr is the address of the proxy's client (its local address).
func (c *Conn) ClientAddr() string { return c.down.RemoteAddr().String() }

// Set installs f for this connection only, overriding the proxy's fault.
func (c *Conn) Set(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	c.override.Store(&setting{Fault: f, version: c.p.version.Add(1)})
	c.enforce()
	return nil
}

// MustSet is Set for faults known to be valid; it panics otherwise.
func (c *Conn) MustSet(f Fault) {
	if err := c.Set(f); err != nil {
		panic(err)
	}
}

// Clear removes the connection's own fault: the proxy's applies again.
func (c *Conn) Clear() {
	c.override.Store(nil)
	c.enforce()
}

// Close closes both sides of the connection.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.down.Close()
		c.mu.Lock()
		up := c.up
		c.mu.Unlock()
		if up != nil {
			_ = up.Close()
		}
		c.p.untrack(c)
	})
}

// Done is closed when the connection has been closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// BlackHoled reports whether the connection has been black-holed.
func (c *Conn) BlackHoled() bool { return c.blackholed.Load() }

// Forwarded returns how many bytes were delivered in dir (Upstream or
// Downstream; Both sums them).
func (c *Conn) Forwarded(dir Direction) int64 {
	if dir == Both {
		return c.forwarded[Upstream].Load() + c.forwarded[Downstream].Load()
	}
	return c.forwarded[dir].Load()
}

func (c *Conn) fault() *setting {
	if s := c.override.Load(); s != nil {
		return s
	}
	return c.p.global.Load()
}

// enforce applies the faults that act without traffic.
func (c *Conn) enforce() {
	switch c.fault().Mode {
	case ModeCut:
		c.Close()
	case ModeBlackHole:
		c.blackholed.Store(true)
	}
}

// start dials the target (unless the connection arrived black-holed) and
// runs the two directions.
func (c *Conn) start(blackhole bool) {
	defer c.p.wg.Done()
	if blackhole {
		c.blackholed.Store(true)
	} else {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(c.p.ctx, DialTimeout)
		up, err := d.DialContext(ctx, "tcp", c.p.Target())
		cancel()
		if err != nil {
			c.p.refused.Add(1)
			c.Close()
			return
		}
		c.mu.Lock()
		c.up = up
		c.mu.Unlock()
		select {
		case <-c.done: // closed while dialing
			_ = up.Close()
			return
		default:
		}
		c.startPipe(Downstream, up, c.down)
	}
	c.startPipe(Upstream, c.down, c.up)
	c.enforce() // a fault set while dialing
}

type chunk struct {
	b   []byte
	due time.Time
	eof bool
}

// startPipe runs one direction: a reader that applies the fault to each
// chunk, and a writer that delivers chunks when they are due. dst is nil
// for a connection black-holed on arrival.
func (c *Conn) startPipe(dir Direction, src, dst net.Conn) {
	q := make(chan chunk, queueLen)
	c.p.wg.Add(1)
	go c.read(dir, src, q)
	if dst != nil {
		c.p.wg.Add(1)
		go c.write(dir, dst, q)
	}
}

// read reads src until it fails, applying the fault in force to every
// chunk.
func (c *Conn) read(dir Direction, src net.Conn, q chan<- chunk) {
	defer c.p.wg.Done()
	var (
		version uint64
		count   int64 // bytes seen in dir since version took effect
		rng     *rand.Rand
	)
	for {
		b := make([]byte, chunkSize)
		n, err := src.Read(b)
		if n > 0 {
			b = b[:n]
			s := c.fault()
			if s.version != version {
				version, count = s.version, 0
				// The direction is part of the seed: with one stream for both
				// directions, an echo would undo every flip.
				rng = rand.New(rand.NewPCG(s.Seed, version<<2|uint64(dir)))
			}
			due := time.Time{}
			deliver := true
			switch s.Mode {
			case ModeCut:
				c.Close()
				return
			case ModeBlackHole:
				c.blackholed.Store(true)
			case ModeDrop:
				deliver = !s.Dir.covers(dir)
			case ModeDelay:
				if s.Dir.covers(dir) {
					d := s.Latency
					if s.Jitter > 0 {
						d += time.Duration(rng.Int64N(2*int64(s.Jitter)+1)) - s.Jitter
					}
					due = time.Now().Add(d)
				}
			case ModeCorrupt:
				if s.Dir.covers(dir) {
					corrupt(b, count, s.Fault, rng)
				}
			}
			count += int64(n)
			if deliver && !c.blackholed.Load() {
				select {
				case q <- chunk{b: b, due: due}:
				case <-c.done:
					return
				}
			}
		}
		if err != nil {
			if c.blackholed.Load() {
				// A black hole answers nothing, not even a FIN: when the
				// target goes away, the client must not learn of it.
				if dir == Downstream {
					_ = src.Close()
					return
				}
				c.Close()
				return
			}
			// Deliver what was read before the end, then close.
			select {
			case q <- chunk{eof: true, due: time.Now()}:
			case <-c.done:
			}
			return
		}
	}
}

// corrupt flips the bytes of b (which starts at offset count in its
// direction) that f selects.
func corrupt(b []byte, count int64, f Fault, rng *rand.Rand) {
	if f.Offset >= count && f.Offset < count+int64(len(b)) {
		b[f.Offset-count] ^= 0xFF
	}
	if f.Rate > 0 {
		for i := range b {
			if rng.Float64() < f.Rate {
				b[i] ^= byte(1 + rng.IntN(255))
			}
		}
	}
}

// write delivers chunks to dst when they are due.
func (c *Conn) write(dir Direction, dst net.Conn, q <-chan chunk) {
	defer c.p.wg.Done()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var ch chunk
		select {
		case ch = <-q:
		case <-c.done:
			return
		}
		if wait := time.Until(ch.due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if ch.eof {
			c.Close()
			return
		}
		if c.blackholed.Load() {
			continue // queued before the black hole opened: swallowed
		}
		if _, err := dst.Write(ch.b); err != nil {
			c.Close()
			return
		}
		c.forwarded[dir].Add(int64(len(ch.b)))
	}
}
