package registrykit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every blocking call of the tests.
const wait = 5 * time.Second

func inst(addr string) spi.Instance {
	return spi.Instance{Service: "user", Addr: addr, Tags: []string{"a"}, Metadata: map[string]string{"k": "v"}}
}

func TestCloneIsDeep(t *testing.T) {
	in := inst("127.0.0.1:1")
	out := registrykit.CloneAll([]spi.Instance{in})
	out[0].Tags[0] = "changed"
	out[0].Metadata["k"] = "changed"
	require.Equal(t, "a", in.Tags[0])
	require.Equal(t, "v", in.Metadata["k"])
	require.NotNil(t, registrykit.CloneAll(nil), "an empty snapshot is a list, not nil")
}

func TestEqual(t *testing.T) {
	a := inst("127.0.0.1:1")
	b := a
	b.Tags, b.Metadata = nil, nil
	c := a
	c.Tags, c.Metadata = []string{}, map[string]string{}
	require.True(t, registrykit.Same(b, c), "nil and empty Tags/Metadata are the same")
	require.False(t, registrykit.Same(a, b))
	w := a
	w.Weight = 3
	require.False(t, registrykit.Same(a, w))
	require.True(t, registrykit.Equal(nil, []spi.Instance{}))
	require.False(t, registrykit.Equal([]spi.Instance{a}, nil))

	list := []spi.Instance{inst("127.0.0.1:3"), inst("127.0.0.1:1"), inst("127.0.0.1:2")}
	registrykit.SortByAddr(list)
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"},
		[]string{list[0].Addr, list[1].Addr, list[2].Addr})
}

func next(t *testing.T, w interface {
	Next(context.Context) ([]spi.Instance, error)
}) []spi.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	list, err := w.Next(ctx)
	require.NoError(t, err)
	return list
}

// quiet checks that Next finds nothing new within a short deadline.
func quiet(t *testing.T, w interface {
	Next(context.Context) ([]spi.Instance, error)
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := w.Next(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestFeed(t *testing.T) {
	f := registrykit.NewFeed()
	quiet(t, f) // nothing published yet

	require.True(t, f.Publish(nil))
	require.Equal(t, []spi.Instance{}, next(t, f))
	require.False(t, f.Publish([]spi.Instance{}), "an Equal snapshot is not published again")
	quiet(t, f)

	// Snapshots coalesce: only the newest is delivered.
	f.Publish([]spi.Instance{inst("127.0.0.1:1")})
	f.Publish([]spi.Instance{inst("127.0.0.1:1"), inst("127.0.0.1:2")})
	got := next(t, f)
	require.Len(t, got, 2)
	got[0].Metadata["k"] = "mine" // a caller's copy is its own
	require.Equal(t, "v", next2(t, f)[0].Metadata["k"])

	// A change and back before anybody looked is no change.
	f.Publish([]spi.Instance{inst("127.0.0.1:9")})
	f.Publish([]spi.Instance{inst("127.0.0.1:1"), inst("127.0.0.1:3")})
	f.Publish([]spi.Instance{inst("127.0.0.1:1"), inst("127.0.0.1:3")})
	require.Len(t, next(t, f), 2)
	quiet(t, f)
}

// next2 publishes a change and returns what Next delivers.
func next2(t *testing.T, f *registrykit.Feed) []spi.Instance {
	t.Helper()
	f.Publish([]spi.Instance{inst("127.0.0.1:5")})
	return next(t, f)
}

func TestFeedWakesBlockedNext(t *testing.T) {
	f := registrykit.NewFeed()
	f.Publish(nil)
	next(t, f)

	got := make(chan []spi.Instance, 1)
	go func() {
		list, _ := f.Next(context.Background())
		got <- list
	}()
	f.Publish([]spi.Instance{inst("127.0.0.1:1")})
	select {
	case list := <-got:
		require.Len(t, list, 1)
	case <-time.After(wait):
		t.Fatal("Publish did not wake a blocked Next")
	}
}

func TestFeedClose(t *testing.T) {
	stopped := errors.New("stopped")
	f := registrykit.NewFeed()
	f.Publish(nil)
	next(t, f)

	errc := make(chan error, 1)
	go func() {
		_, err := f.Next(context.Background())
		errc <- err
	}()
	f.Close(stopped)
	select {
	case err := <-errc:
		require.ErrorIs(t, err, stopped)
	case <-time.After(wait):
		t.Fatal("Close did not wake a blocked Next")
	}
	f.Close(errors.New("second")) // the first error stays
	require.False(t, f.Publish([]spi.Instance{inst("127.0.0.1:1")}))
	_, err := f.Next(context.Background())
	require.ErrorIs(t, err, stopped)
}

func TestFeedContext(t *testing.T) {
	f := registrykit.NewFeed()
	f.Publish(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Next(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []spi.Instance{}, next(t, f), "a cancelled Next loses nothing")
}

// source is an in-memory backend for PollWatcher: a list guarded by a
// lock, with a channel closed on each change, and an optional failure.
type source struct {
	mu      sync.Mutex
	list    []spi.Instance
	changed chan struct{}
	fail    bool
	signal  bool // close changed on set; false models changes nobody signals
	reads   int
}

func newSource(signal bool) *source { return &source{changed: make(chan struct{}), signal: signal} }

func (s *source) read() ([]spi.Instance, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.fail {
		return nil, s.changed, errors.New("backend away")
	}
	return registrykit.CloneAll(s.list), s.changed, nil
}

func (s *source) set(list []spi.Instance, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list, s.fail = list, fail
	if s.signal {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

var (
	errClosed  = errors.New("registry closed")
	errStopped = errors.New("watch stopped")
)

func TestPollWatcherSignalled(t *testing.T) {
	src := newSource(true)
	w := registrykit.NewPollWatcher(src.read, registrykit.PollOptions{ErrClosed: errClosed, ErrStopped: errStopped})
	defer w.Stop()
	require.Equal(t, []spi.Instance{}, next(t, w))
	quiet(t, w)

	got := make(chan []spi.Instance, 1)
	go func() {
		list, _ := w.Next(context.Background())
		got <- list
	}()
	src.set([]spi.Instance{inst("127.0.0.1:1")}, false)
	select {
	case list := <-got:
		require.Len(t, list, 1)
	case <-time.After(wait):
		t.Fatal("a signalled change did not wake Next")
	}

	// A failing read keeps the last snapshot; the next good one counts.
	src.set(nil, true)
	quiet(t, w)
	src.set([]spi.Instance{inst("127.0.0.1:1")}, false)
	quiet(t, w) // the same set as before the outage
	src.set([]spi.Instance{inst("127.0.0.1:2")}, false)
	require.Equal(t, "127.0.0.1:2", next(t, w)[0].Addr)
}

func TestPollWatcherInterval(t *testing.T) {
	src := newSource(false)
	w := registrykit.NewPollWatcher(src.read, registrykit.PollOptions{
		Interval: 5 * time.Millisecond, ErrClosed: errClosed, ErrStopped: errStopped,
	})
	defer w.Stop()
	next(t, w)
	src.set([]spi.Instance{inst("127.0.0.1:1")}, false) // no signal: found by the interval
	require.Len(t, next(t, w), 1)
}

func TestPollWatcherStopAndClose(t *testing.T) {
	closed := make(chan struct{})
	src := newSource(true)
	opts := registrykit.PollOptions{Closed: closed, ErrClosed: errClosed, ErrStopped: errStopped}

	w := registrykit.NewPollWatcher(src.read, opts)
	next(t, w)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		errc <- err
	}()
	w.Stop()
	w.Stop()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, errStopped)
	case <-time.After(wait):
		t.Fatal("Stop did not end a blocked Next")
	}

	w2 := registrykit.NewPollWatcher(src.read, opts)
	defer w2.Stop()
	next(t, w2)
	close(closed)
	_, err := w2.Next(context.Background())
	require.ErrorIs(t, err, errClosed)
}
