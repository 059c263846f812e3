package metricsfilter

import (
	"sync"
	"sync/atomic"
	"time"
)

// OtherPeer is the peer label of calls from peers beyond Options.MaxPeers
// while none of the peers already labelled has been idle for PeerTTL.
const OtherPeer = "_other"

// peerTable bounds the peer label's values: at most max peers have series
// of their own. A peer idle for ttl gives up its slot, and its series are
// deleted, when a new peer needs one; until then a new peer is counted
// under OtherPeer. A server whose clients churn (pods rescheduled, NAT
// ports, autoscaling) thus keeps at most max+1 peer values per (side,
// method, code) instead of one per address it ever saw.
type peerTable struct {
	max int
	ttl time.Duration
	now func() time.Time
	// drop deletes a peer's series; called with mu held for writing, so
	// no call is recording into them at the time.
	drop func(peer string)

	// Recording a call holds mu for reading, so the series it touches
	// cannot be deleted under it (which would re-create them after the
	// peer left the table, beyond max); admitting a peer holds it for
	// writing.
	mu   sync.RWMutex
	seen map[string]*atomic.Int64 // peer -> last seen, unix ns
	// nextExpiry is when the least recently seen peer at the last sweep
	// expires at the earliest: before then a sweep finds nothing.
	nextExpiry int64
}

func newPeerTable(max int, ttl time.Duration, drop func(string)) *peerTable {
	return &peerTable{max: max, ttl: ttl, now: time.Now, drop: drop, seen: make(map[string]*atomic.Int64)}
}

// record runs rec with the label to use for peer, while that label's
// series cannot be deleted.
func (p *peerTable) record(peer string, rec func(label string)) {
	now := p.now().UnixNano()
	p.mu.RLock()
	if last, ok := p.seen[peer]; ok {
		last.Store(now)
		rec(peer)
		p.mu.RUnlock()
		return
	}
	p.mu.RUnlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	label := p.admitLocked(peer, now)
	rec(label)
}

// admitLocked gives peer a slot if there is one (after expiring idle
// peers when the table is full), else returns OtherPeer.
func (p *peerTable) admitLocked(peer string, now int64) string {
	if last, ok := p.seen[peer]; ok { // admitted while we waited for mu
		last.Store(now)
		return peer
	}
	if len(p.seen) >= p.max && now >= p.nextExpiry {
		p.sweepLocked(now)
	}
	if len(p.seen) >= p.max {
		return OtherPeer
	}
	last := new(atomic.Int64)
	last.Store(now)
	p.seen[peer] = last
	return peer
}

// sweepLocked deletes the peers idle for ttl and their series.
func (p *peerTable) sweepLocked(now int64) {
	ttl := int64(p.ttl)
	oldest := now
	for peer, last := range p.seen {
		l := last.Load()
		if now-l >= ttl {
			delete(p.seen, peer)
			p.drop(peer)
			continue
		}
		oldest = min(oldest, l)
	}
	p.nextExpiry = oldest + ttl
}

// size returns how many peers hold a slot.
func (p *peerTable) size() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.seen)
}
