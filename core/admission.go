package core

import (
	"net"
	"sync/atomic"

	"github.com/kiterpc/kite/core/defaults"
	"github.com/kiterpc/kite/spi"
)

// Defaults of the hostile-client bounds (docs/RELIABILITY.md, "Hostile
// clients"); zero ServerOptions fields take them. The values live in the
// core/defaults table, which kite.hcl reads too.
const (
	DefaultStreamIdleTimeout = defaults.StreamIdleTimeout
	DefaultBodyMemory        = defaults.BodyMemory
	DefaultMaxPeerShare      = defaults.MaxPeerShare
)

// Admission constants.
const (
	// minPeerSlots: a peer may always hold this many calls (or all of
	// max_concurrency when that is smaller), whatever its share, so small
	// servers are not throttled to a handful of calls per client.
	minPeerSlots = 100
	// fairAbove: past this fraction of max_concurrency, a call is admitted
	// only from a peer holding less than an equal split of it among the
	// peers with calls in progress, so the last slots go to light peers.
	fairAbove = 0.9
	// streamBufferFrames: a stream's unread data may reach this many max
	// frames (16 MiB by default) before the stream is ended.
	streamBufferFrames = 4
)

// peer is the remote address connections come from (the IP for TCP;
// each connection of another transport is a peer of its own). Slots and
// body memory are shared out per peer: one client opening many
// connections is still one peer.
type peer struct {
	key    string
	conns  int // under Server.peersMu
	active atomic.Int64
	mem    atomic.Int64
}

func peerKey(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// peerFor returns the peer of a new connection.
func (s *Server) peerFor(c net.Conn) *peer {
	key := peerKey(c)
	if key == "" {
		return &peer{conns: 1}
	}
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	p := s.peers[key]
	if p == nil {
		p = &peer{key: key}
		s.peers[key] = p
	}
	p.conns++
	return p
}

// dropPeer is called when a connection of p ends.
func (s *Server) dropPeer(p *peer) {
	if p.key == "" {
		return
	}
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if p.conns--; p.conns == 0 && s.peers[p.key] == p {
		delete(s.peers, p.key)
	}
}

// limits derived from the options once, at NewServer.
type admissionLimits struct {
	peerSlots int64 // per-peer cap on calls in progress
	fairFrom  int64 // inflight above which fair admission applies
	peerMem   int64 // per-peer share of the body budget
	streamBuf int64 // per-stream unread bytes
}

func (s *Server) initAdmission() {
	o := &s.opts
	slots := int64(o.MaxConcurrency)
	l := &s.lim
	l.peerSlots = max(int64(float64(slots)*o.MaxPeerShare), min(slots, minPeerSlots))
	l.fairFrom = int64(float64(slots) * fairAbove)
	l.peerMem = int64(float64(o.BodyMemory) * o.MaxPeerShare)
	l.streamBuf = int64(streamBufferFrames) * int64(o.MaxFrame)
	s.peers = make(map[string]*peer)
}

// admit takes a slot for a new call or stream on sc: server-wide,
// per-connection and per-peer, with fair admission near the server's
// limit. It returns why not, with every count restored, or nil.
func (sc *serverConn) admit() *spi.Error {
	s := sc.s
	n := s.inflight.Add(1)
	if n > int64(s.opts.MaxConcurrency) {
		s.release()
		return spi.Errorf(spi.ResourceExhausted, "server at max_concurrency (%d)", s.opts.MaxConcurrency)
	}
	if c := sc.active.Add(1); c > int32(s.opts.MaxConnConcurrency) {
		sc.active.Add(-1)
		s.release()
		return spi.Errorf(spi.ResourceExhausted, "connection at max_conn_concurrency (%d)", s.opts.MaxConnConcurrency)
	}
	p := sc.from
	a := p.active.Add(1)
	if a == 1 {
		s.busyPeers.Add(1)
	}
	var e *spi.Error
	if a > s.lim.peerSlots {
		e = spi.Errorf(spi.ResourceExhausted, "peer %s holds %d calls, its share of max_concurrency (max_peer_share %g of %d)", sc.peerName(), a-1, s.opts.MaxPeerShare, s.opts.MaxConcurrency)
	} else if n > s.lim.fairFrom {
		if k := s.busyPeers.Load(); k > 1 && a > s.lim.fairFrom/k {
			e = spi.Errorf(spi.ResourceExhausted, "server near max_concurrency (%d): peer %s holds %d calls, more than its fair share among %d busy peers", s.opts.MaxConcurrency, sc.peerName(), a-1, k)
		}
	}
	if e != nil {
		sc.unadmit()
		return e
	}
	return nil
}

// unadmit gives back the slot admit took.
func (sc *serverConn) unadmit() {
	if sc.from.active.Add(-1) == 0 {
		sc.s.busyPeers.Add(-1)
	}
	sc.active.Add(-1)
	sc.s.release()
}

func (sc *serverConn) peerName() string {
	if sc.from.key != "" {
		return sc.from.key
	}
	return sc.peer
}

// charge takes n bytes of the body budget for sc's peer; false (and
// nothing taken) when the server's budget or the peer's share of it
// would be exceeded.
func (sc *serverConn) charge(n int64) bool {
	if n <= 0 {
		return true
	}
	s := sc.s
	if s.mem.Add(n) > s.opts.BodyMemory {
		s.mem.Add(-n)
		return false
	}
	if sc.from.mem.Add(n) > s.lim.peerMem {
		sc.from.mem.Add(-n)
		s.mem.Add(-n)
		return false
	}
	return true
}

// uncharge returns n bytes taken by charge.
func (sc *serverConn) uncharge(n int64) {
	if n > 0 {
		sc.from.mem.Add(-n)
		sc.s.mem.Add(-n)
	}
}

func (sc *serverConn) budgetError(what string, n int64) *spi.Error {
	s := sc.s
	return spi.Errorf(spi.ResourceExhausted, "%s of %d bytes does not fit the server's body memory (body_memory %d, %d in use; peer %s holds %d of its share %d)",
		what, n, s.opts.BodyMemory, s.mem.Load(), sc.peerName(), sc.from.mem.Load(), s.lim.peerMem)
}

// BodyMemory returns the bytes of the body budget in use: request bodies
// of calls in progress and unread stream data.
func (s *Server) BodyMemory() int64 { return s.mem.Load() }
