package metricsfilter

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// peerValues returns the distinct peer label values in family.
func peerValues(t *testing.T, reg *prometheus.Registry, name string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range family(t, reg, name).GetMetric() {
		out[labels(m)["peer"]] = true
	}
	return out
}

// TestPeerLabelBoundedUnderChurn: 20,000 distinct callers (a fleet whose
// pods come and go) leave at most MaxPeers peer values plus "_other",
// and once the labelled peers have been idle for PeerTTL, new peers take
// their slots and the old series are gone.
func TestPeerLabelBoundedUnderChurn(t *testing.T) {
	reg := prometheus.NewRegistry()
	const maxPeers = 50
	f, err := NewFilter(Options{Registerer: reg, PeerLabel: true, MaxPeers: maxPeers, PeerTTL: time.Minute})
	require.NoError(t, err)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f.peers.now = func() time.Time { return time.Unix(0, clock.Load()) }
	inv := f.Wrap(returning(nil))

	// Wave 1: 10,000 peers from 8 goroutines, within one TTL.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < 10000; i += 8 {
				call(t, inv, spi.ServerSide, "Users.Get", fmt.Sprintf("10.%d.%d.%d:40000", i>>16, (i>>8)&255, i&255))
			}
		})
	}
	wg.Wait()
	peers := peerValues(t, reg, "kite_rpc_calls_total")
	require.Len(t, peers, maxPeers+1, "maxPeers peers and _other")
	require.True(t, peers[OtherPeer])
	require.Equal(t, maxPeers, f.peers.size())
	var total float64
	for _, m := range family(t, reg, "kite_rpc_calls_total").GetMetric() {
		total += m.GetCounter().GetValue()
	}
	require.Equal(t, 10000.0, total, "every call counted, labelled or not")

	// Wave 2, two TTLs later: the first wave's peers expired, the new
	// ones get labels of their own and the old series are deleted.
	clock.Add(int64(2 * time.Minute))
	for i := range 10000 {
		call(t, inv, spi.ServerSide, "Users.Get", fmt.Sprintf("172.16.%d.%d:40000", i>>8, i&255))
	}
	peers = peerValues(t, reg, "kite_rpc_calls_total")
	require.Len(t, peers, maxPeers+1)
	for p := range peers {
		require.True(t, p == OtherPeer || strings.HasPrefix(p, "172.16."), "series of expired peer %s kept", p)
	}
	durPeers := peerValues(t, reg, "kite_rpc_duration_seconds")
	require.Len(t, durPeers, maxPeers+1, "the histogram is bounded alike")

	// A labelled peer that keeps calling keeps its slot.
	keep := "172.16.0.1:1"
	clock.Add(int64(30 * time.Second))
	call(t, inv, spi.ServerSide, "Users.Get", keep)
	clock.Add(int64(45 * time.Second)) // the others idle 75 s, it 45 s
	call(t, inv, spi.ServerSide, "Users.Get", "192.168.0.1:1")
	peers = peerValues(t, reg, "kite_rpc_calls_total")
	require.True(t, peers["172.16.0.1"], "an active peer lost its label")
	require.True(t, peers["192.168.0.1"])
	require.Len(t, peers, 3, "the 49 idle peers expired: the active one, the new one, _other")
}

// TestRejectedCallsCounted: a rejection reported by the server counts in
// calls_total and in server_rejected_total, an unknown method as _OTHER.
func TestRejectedCallsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, err := NewFilter(Options{Registerer: reg})
	require.NoError(t, err)
	var _ spi.RejectObserver = f
	f.CallRejected(&spi.Rejection{Method: "Users.Nope", Peer: "127.0.0.1:5", Reason: spi.ReasonUnknownMethod, Err: spi.Errorf(spi.Unimplemented, "no")})
	f.CallRejected(&spi.Rejection{Method: "Users.Get", Known: true, Peer: "127.0.0.1:5", Reason: spi.ReasonConcurrency, Err: spi.Errorf(spi.ResourceExhausted, "full")})
	f.CallRejected(&spi.Rejection{Method: "Users.Get", Known: true, Peer: "127.0.0.1:6", Reason: spi.ReasonConcurrency, Err: spi.Errorf(spi.ResourceExhausted, "full")})
	expected := `
# HELP kite_rpc_calls_total Calls finished, by side, method and status code.
# TYPE kite_rpc_calls_total counter
kite_rpc_calls_total{code="ResourceExhausted",method="Users.Get",side="server"} 2
kite_rpc_calls_total{code="Unimplemented",method="_OTHER",side="server"} 1
# HELP kite_rpc_server_rejected_total Calls a server refused before its filter chain, by method, status code and reason (also counted in calls_total).
# TYPE kite_rpc_server_rejected_total counter
kite_rpc_server_rejected_total{code="ResourceExhausted",method="Users.Get",reason="concurrency"} 2
kite_rpc_server_rejected_total{code="Unimplemented",method="_OTHER",reason="unknown_method"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "kite_rpc_calls_total", "kite_rpc_server_rejected_total"))
}

// BenchmarkFilterPeerLabel is the per-call cost with the peer label: a
// known peer takes the table's read lock and one label lookup per series.
func BenchmarkFilterPeerLabel(b *testing.B) {
	f, err := NewFilter(Options{Registerer: prometheus.NewRegistry(), PeerLabel: true})
	if err != nil {
		b.Fatal(err)
	}
	inv := f.Wrap(returning(nil))
	call := &spi.Call{Side: spi.ServerSide, Method: "Users.Get", Peer: "10.0.0.1:40000"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = inv(context.Background(), call)
		}
	})
}
