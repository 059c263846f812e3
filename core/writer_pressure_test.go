package core

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stalledWriter is a batch writer over a pipe nobody reads, filled until
// senders would have to wait.
func stalledWriter(t *testing.T, timeout time.Duration, onErr func(error)) *batchWriter {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = b.Close() })
	w := newBatchWriter(a, onErr, func() bool { return false })
	w.timeout = timeout
	t.Cleanup(func() { w.close(errors.New("test over")) })
	return w
}

func fillWriter(t *testing.T, w *batchWriter) {
	t.Helper()
	frame := make([]byte, 1<<20)
	for {
		w.mu.Lock()
		full := w.queueFull()
		w.mu.Unlock()
		if full {
			return
		}
		require.NoError(t, w.write(frame))
	}
}

// A sender waiting for room gives up when its context ends, and the
// frame is not queued.
func TestWriterWaitHonoursContext(t *testing.T) {
	w := stalledWriter(t, 0, nil)
	fillWriter(t, w)
	since, unsent := w.pressure()
	require.False(t, since.IsZero(), "a full writer must report pressure")
	require.Greater(t, unsent, maxPending)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := w.writeCtx(ctx, make([]byte, 100))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)
	w.mu.Lock()
	queued := w.queued
	w.mu.Unlock()
	require.Equal(t, unsent, queued+w.inWriteLocked(), "the dropped frame must not be queued")

	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, w.waitRoom(ctx2), context.DeadlineExceeded)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	require.ErrorIs(t, w.drainCtx(ctx3), context.DeadlineExceeded)
}

func (w *batchWriter) inWriteLocked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inWrite
}

// A socket write that cannot complete within the write timeout fails the
// writer, and the owner hears of it.
func TestWriterWriteTimeout(t *testing.T) {
	failed := make(chan error, 1)
	w := stalledWriter(t, 100*time.Millisecond, func(err error) { failed <- err })
	start := time.Now()
	require.NoError(t, w.write(make([]byte, 1000)))
	select {
	case err := <-failed:
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		took := time.Since(start)
		require.GreaterOrEqual(t, took, 80*time.Millisecond)
		require.Less(t, took, time.Second)
	case <-time.After(3 * time.Second):
		t.Fatal("a write to a peer that does not read never timed out")
	}
	require.Error(t, w.write(make([]byte, 10)), "a failed writer must refuse frames")
}

// Pressure ends once the peer reads again.
func TestWriterPressureEndsWhenPeerReads(t *testing.T) {
	a, b := net.Pipe()
	w := newBatchWriter(a, nil, func() bool { return false })
	defer w.close(errors.New("test over"))
	defer b.Close()
	fillWriter(t, w)
	since, _ := w.pressure()
	require.False(t, since.IsZero())
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	require.NoError(t, w.waitBelowCap())
	require.NoError(t, w.drainCtx(context.Background()))
	since, unsent := w.pressure()
	require.True(t, since.IsZero(), "pressure reported after the peer read everything (%d unsent)", unsent)
}
