package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiterpc/kite/internal/quorum"
	"github.com/kiterpc/kite/spi"
)

// TestWritesRideThroughLeaderLoss: Register and Deregister made through
// a follower just as the leader is SIGKILLed succeed once a new leader is
// elected, instead of failing with "etcdserver: no leader" or, 7 s later,
// "etcdserver: request timed out" (as tests/cluster/ensemble's scenario
// 2 found they did: etcd's client hands such write failures out).
func TestWritesRideThroughLeaderLoss(t *testing.T) {
	cl := quorum.Etcd(t, 3)
	leader := cl.WaitLeader(t, 30*time.Second)
	var follower *quorum.Member
	for _, m := range cl.Members {
		if m != leader {
			follower = m
			break
		}
	}
	// Only the follower: every request is forwarded to the leader by it.
	r, err := New(Config{Endpoints: []string{follower.ClientAddr}, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in1 := spi.Instance{Service: "ride", Addr: "127.0.0.1:9301"}
	in2 := spi.Instance{Service: "ride", Addr: "127.0.0.1:9302"}
	require.NoError(t, r.Register(ctx, in1))

	killed := time.Now()
	leader.Kill()
	errs := make(chan error, 2)
	go func() { errs <- r.Register(ctx, in2) }()
	go func() { errs <- r.Deregister(ctx, in1) }()
	for range 2 {
		require.NoError(t, <-errs, "a write while the cluster elects")
	}
	t.Logf("writes through the follower done %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	got, err := r.Resolve(ctx, "ride")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, in2.Addr, got[0].Addr)
}

func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrTimeoutDueToLeaderFail, true},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrLeaderChanged, true},
		{fmt.Errorf("put: %w", rpctypes.ErrTimeout), true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrPermissionDenied, false},
		{status.Error(codes.InvalidArgument, "bad"), false},
		{errors.New("something else"), false},
		{context.Canceled, false},
	} {
		assert.Equal(t, tc.want, transient(tc.err), "%v", tc.err)
	}
}
