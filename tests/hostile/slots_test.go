package hostile

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// openStreams opens n streams on Chat from c (ids from first) and sends
// nothing more: the "slots held forever" attack of issue 20.
func openStreams(c *conn, first uint32, n int) {
	for i := 0; i < n; i++ {
		c.request(first+uint32(i), "H.Chat", nil, reqOpts{stream: true})
	}
}

// call makes one unary Echo call from a fresh connection from peer and
// returns its status code (0 = OK).
func call(t *testing.T, addr, from string) spi.Code {
	t.Helper()
	c := dial(t, addr, from)
	c.request(1, "H.Echo", []byte("hi"), reqOpts{})
	r, err := c.next(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, protocol.TypeResponse, r.typ)
	return r.code
}

// TestStreamSlotsSharedAndReclaimed is issue 20 item 1, scaled down to a
// server of 200 slots (100 per connection): one peer opening idle streams
// on two connections must not take every slot, a second attacking peer
// must leave room for a third, and idle streams must end (telling the
// client why) so that their slots come back.
func TestStreamSlotsSharedAndReclaimed(t *testing.T) {
	opts, _ := json.Marshal(map[string]any{
		"MaxConcurrency": 200, "MaxConnConcurrency": 100,
		"StreamIdleTimeout": 400 * time.Millisecond,
	})
	s := startServer(t, spec{Options: opts})

	// Peer A (127.0.0.1): two connections x 100 idle streams.
	a1, a2 := dial(t, s.addr, ""), dial(t, s.addr, "")
	openStreams(a1, 1, 100)
	openStreams(a2, 1, 100)
	// A ping round trip on each proves every open was processed.
	for _, c := range []*conn{a1, a2} {
		c.control(protocol.TypePing, 0, make([]byte, 8))
	}
	// refused counts, per connection, the opens answered ResourceExhausted.
	refused := map[*conn]int{}
	for _, c := range []*conn{a1, a2} {
		for {
			r, err := c.next(3 * time.Second)
			require.NoError(t, err)
			if r.typ == protocol.TypePong {
				break
			}
			require.Equal(t, protocol.TypeResponse, r.typ, "unexpected frame for stream %d: %+v", r.id, r)
			require.Equal(t, spi.ResourceExhausted, r.code, r.msg)
			refused[c]++
		}
	}
	refusedA := refused[a1] + refused[a2]
	t.Logf("peer A: 200 stream opens, %d refused", refusedA)
	// Another peer still gets calls through.
	require.Equal(t, spi.OK, call(t, s.addr, "127.0.0.2"), "a second peer must not be starved by the first")

	// Peer B (127.0.0.3) attacks too; a third peer must still get in.
	b := dial(t, s.addr, "127.0.0.3")
	openStreams(b, 1, 100)
	b.control(protocol.TypePing, 0, make([]byte, 8))
	for {
		r, err := b.next(3 * time.Second)
		require.NoError(t, err)
		if r.typ == protocol.TypePong {
			break
		}
		require.Equal(t, spi.ResourceExhausted, r.code, r.msg)
		refused[b]++
	}
	refusedB := refused[b]
	t.Logf("peer B: 100 stream opens, %d refused", refusedB)
	require.Equal(t, spi.OK, call(t, s.addr, "127.0.0.4"), "fair admission must leave room for a third peer")

	// Idle streams end: every stream admitted above gets a StreamEnd
	// saying why, within the idle timeout plus slack.
	start := time.Now()
	ended := 0
	for _, c := range []*conn{a1, a2, b} {
		for i := refused[c]; i < 100; i++ {
			r, err := c.next(3 * time.Second)
			require.NoError(t, err, "every admitted idle stream must be ended (%d so far, after %v)", ended, time.Since(start))
			require.Equal(t, protocol.TypeStreamEnd, r.typ, "%+v", r)
			require.Equal(t, spi.DeadlineExceeded, r.code, r.msg)
			require.Contains(t, r.msg, "idle")
			ended++
		}
	}
	t.Logf("%d idle streams ended %v after the last was opened", ended, time.Since(start))
	// And their slots are free again: peer A can open a full connection's worth.
	c := dial(t, s.addr, "")
	openStreams(c, 1, 100)
	c.control(protocol.TypePing, 0, make([]byte, 8))
	for {
		r, err := c.next(3 * time.Second)
		require.NoError(t, err)
		if r.typ == protocol.TypePong {
			break
		}
		require.NotEqual(t, protocol.TypeResponse, r.typ, "slots of ended streams must be free again: %+v", r)
	}
	t.Logf("server RSS: start %.1f MiB, peak +%.1f MiB", float64(s.base)/mib, float64(s.peakGrowth(t))/mib)
}
