package hostile

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/spi"
)

// TestStreamBuffersBoundedInBytes is issue 20 item 4: two streams to a
// handler that never reads, each sent a full window (64 messages) of
// 4 MiB messages — 512 MiB that the message-counted window admits. The
// server bounds each stream's buffer in bytes and ends an overrunning
// stream with a StreamEnd saying why.
func TestStreamBuffersBoundedInBytes(t *testing.T) {
	s := startServer(t, spec{})
	c := dial(t, s.addr, "")
	msg := make([]byte, 4*mib-8<<10)
	c.request(1, "H.Sink", nil, reqOpts{stream: true})
	c.request(2, "H.Sink", nil, reqOpts{stream: true})
	ends := make(chan reply, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := c.next(10 * time.Second)
			if err != nil {
				return
			}
			ends <- r
			if len(ends) == 2 {
				return
			}
		}
	}()
	for i := 0; i < 64; i++ {
		c.data(1, msg)
		c.data(2, msg)
	}
	wg.Wait()
	close(ends)
	growth := s.peakGrowth(t)
	t.Logf("2 streams x 64 x 4 MiB unread: server peak RSS +%.1f MiB", float64(growth)/mib)
	got := 0
	for r := range ends {
		got++
		require.Equal(t, protocol.TypeStreamEnd, r.typ, "%+v", r)
		require.Equal(t, spi.ResourceExhausted, r.code, r.msg)
		t.Logf("stream %d ended: %s", r.id, r.msg)
	}
	require.Equal(t, 2, got, "both streams must be ended with a StreamEnd")
	// Live data is bounded at 16 MiB per stream; the frames read and
	// discarded after the streams ended (4 MiB each, above the frame
	// pools' largest class) are garbage until the next GC cycles, which
	// is what the rest of the peak is. Unbounded, it was +512 MiB.
	require.Less(t, growth, int64(200*mib*raceMemFactor), "unread stream data must be bounded in bytes")
}

// TestStreamWindowOverrunTold: a sender that ignores the message window
// gets a StreamEnd with ResourceExhausted, not silence.
func TestStreamWindowOverrunTold(t *testing.T) {
	s := startServer(t, spec{})
	c := dial(t, s.addr, "")
	c.request(1, "H.Sink", nil, reqOpts{stream: true})
	for i := 0; i < 100; i++ {
		c.data(1, []byte("x"))
	}
	r, err := c.next(3 * time.Second)
	require.NoError(t, err, "the server must tell the client why its stream ended")
	require.Equal(t, protocol.TypeStreamEnd, r.typ, "%+v", r)
	require.Equal(t, uint32(1), r.id)
	require.Equal(t, spi.ResourceExhausted, r.code, r.msg)
	require.Contains(t, r.msg, "window")
}

// TestStreamDeadlineEndsDeadlineExceeded: a stream whose deadline passes
// ends with DeadlineExceeded even when its handler returns nil.
func TestStreamDeadlineEndsDeadlineExceeded(t *testing.T) {
	s := startServer(t, spec{})
	c := dial(t, s.addr, "")
	c.request(1, "H.Sink", nil, reqOpts{stream: true, timeout: 200 * time.Millisecond})
	r, err := c.next(3 * time.Second)
	require.NoError(t, err)
	require.Equal(t, protocol.TypeStreamEnd, r.typ, "%+v", r)
	require.Equal(t, spi.DeadlineExceeded, r.code, "status %v %q", r.code, r.msg)
}
