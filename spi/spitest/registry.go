package spitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
)

// RegistryWait bounds how long the registry suite waits for a change made
// through one client to become visible through another. Backends that
// propagate slowly may raise it before calling TestRegistry; the suite
// only waits as long as it must, so a generous bound costs nothing on
// a passing run.
var RegistryWait = 15 * time.Second

// registryQuiet is how long the suite watches for spurious snapshots when
// nothing changed. Long enough to span several polling intervals of a
// polling implementation, short enough to keep the suite quick.
const registryQuiet = 400 * time.Millisecond

// TestRegistry runs the conformance suite for spi.Registry against the
// implementation built by newRegistry. Any registry, compiled in or
// reached through an out-of-process bridge, must pass it.
//
// newRegistry is called several times per subtest; every call must return
// a new client of the same backend (the same ZooKeeper ensemble, the same
// directory, the same in-process store), so that what one client
// registers the others can see. The suite closes every registry it gets
// exactly once; newRegistry may register its own t.Cleanup for anything
// else it set up (a server, a temp dir).
//
// Every subtest uses fresh, unique service names (derived from t.Name()
// plus random bytes), so several suites and runs can share one server.
// Instance addresses are loopback "host:port" strings.
//
// The contract checked, beyond the interface's comments:
//   - Resolve returns every field of a registered instance intact:
//     Service, Addr, Weight, Version, Zone, Tags (order preserved) and
//     Metadata. Resolve of an unknown service is an empty result, not an
//     error.
//   - Registering an instance again (same service and addr) replaces it.
//   - Deregistering an unknown instance is not an error.
//   - Watch: the first Next returns the current snapshot, possibly empty;
//     later Nexts return full snapshots after changes made through
//     another client; a Next that finds nothing changed blocks (no
//     duplicate snapshots) until ctx is done and returns an error
//     matching ctx.Err(); after Stop, Next returns an error, also when it
//     was blocked when Stop was called; Stop may be called twice.
//   - Close withdraws the instances registered through that client (the
//     others see them go) and ends that client's watches.
//   - Registrations of one service never show up in another.
//   - Concurrent Register, Deregister, Resolve and Watch are safe (run
//     the suite with -race).
//
// Watchers may coalesce changes: the suite waits until the snapshot it
// expects arrives and tolerates intermediate ones.
func TestRegistry(t *testing.T, newRegistry func(t *testing.T) spi.Registry) {
	t.Helper()
	s := &registrySuite{newRegistry: newRegistry}
	t.Run("RegisterResolve", s.testRegisterResolve)
	t.Run("ResolveUnknown", s.testResolveUnknown)
	t.Run("ReRegisterUpdates", s.testReRegister)
	t.Run("Deregister", s.testDeregister)
	t.Run("DeregisterUnknown", s.testDeregisterUnknown)
	t.Run("WatchInitialEmpty", s.testWatchInitialEmpty)
	t.Run("WatchInitialSnapshot", s.testWatchInitialSnapshot)
	t.Run("WatchUpdates", s.testWatchUpdates)
	t.Run("WatchNoDuplicates", s.testWatchNoDuplicates)
	t.Run("WatchNextHonoursContext", s.testWatchContext)
	t.Run("WatchStop", s.testWatchStop)
	t.Run("CloseWithdraws", s.testCloseWithdraws)
	t.Run("CloseEndsWatches", s.testCloseEndsWatches)
	t.Run("ServicesIsolated", s.testIsolation)
	t.Run("Concurrent", s.testConcurrent)
}

type registrySuite struct {
	newRegistry func(t *testing.T) spi.Registry
}

// open returns a new client whose Close the suite runs once, at cleanup
// or earlier through the returned close function.
func (s *registrySuite) open(t *testing.T) (spi.Registry, func() error) {
	t.Helper()
	r := s.newRegistry(t)
	if r == nil {
		t.Fatal("newRegistry returned nil")
	}
	var once sync.Once
	var err error
	closeFn := func() error {
		once.Do(func() { err = r.Close() })
		return err
	}
	t.Cleanup(func() {
		if err := closeFn(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, closeFn
}

// watch starts a watch whose Stop runs at cleanup.
func watch(t *testing.T, r spi.Registry, service string) spi.Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
	defer cancel()
	w, err := r.Watch(ctx, service)
	if err != nil {
		t.Fatalf("Watch(%q): %v", service, err)
	}
	if w == nil {
		t.Fatalf("Watch(%q) returned a nil watcher", service)
	}
	t.Cleanup(w.Stop)
	return w
}

// uniqueService returns a service name unique to this test and run, made
// of characters every registry accepts in a name or path segment.
func uniqueService(t *testing.T, suffix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := t.Name()
	if len(name) > 60 {
		// Keep the tail: it names the subtest, the head only the suite.
		name = name[len(name)-60:]
	}
	var sb strings.Builder
	sb.WriteString("kt-")
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			sb.WriteByte('-')
		}
	}
	if suffix != "" {
		sb.WriteString("-" + suffix)
	}
	sb.WriteString("-" + hex.EncodeToString(b[:]))
	return sb.String()
}

// instance returns a fully populated instance on a loopback address.
func instance(service string, port int) spi.Instance {
	return spi.Instance{
		Service: service,
		Addr:    fmt.Sprintf("127.0.0.1:%d", port),
		Weight:  port%50 + 1,
		Version: "v1.2." + fmt.Sprint(port%10),
		Zone:    "zone-a",
		Tags:    []string{"primary", "canary", "t" + fmt.Sprint(port)},
		Metadata: map[string]string{
			"region":  "eu-west",
			"port":    fmt.Sprint(port),
			"unicode": "λ→✓ with spaces & symbols=?",
		},
	}
}

func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
	t.Cleanup(cancel)
	return ctx
}

func mustRegister(t *testing.T, r spi.Registry, in spi.Instance) {
	t.Helper()
	if err := r.Register(opCtx(t), in); err != nil {
		t.Fatalf("Register(%v): %v", in, err)
	}
}

func mustDeregister(t *testing.T, r spi.Registry, in spi.Instance) {
	t.Helper()
	if err := r.Deregister(opCtx(t), in); err != nil {
		t.Fatalf("Deregister(%v): %v", in, err)
	}
}

// normalize sorts by address and maps empty collections to nil so that
// snapshots compare by content.
func normalize(in []spi.Instance) []spi.Instance {
	out := make([]spi.Instance, len(in))
	for i, x := range in {
		if len(x.Tags) == 0 {
			x.Tags = nil
		}
		if len(x.Metadata) == 0 {
			x.Metadata = nil
		}
		out[i] = x
	}
	slices.SortFunc(out, func(a, b spi.Instance) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

func sameInstances(got, want []spi.Instance) bool {
	g, w := normalize(got), normalize(want)
	return slices.EqualFunc(g, w, func(a, b spi.Instance) bool {
		return a.Service == b.Service && a.Addr == b.Addr && a.Weight == b.Weight &&
			a.Version == b.Version && a.Zone == b.Zone && slices.Equal(a.Tags, b.Tags) &&
			maps.Equal(a.Metadata, b.Metadata)
	})
}

func describe(in []spi.Instance) string {
	if len(in) == 0 {
		return "[] (no instances)"
	}
	var b strings.Builder
	for _, x := range normalize(in) {
		fmt.Fprintf(&b, "\n\t%+v", x)
	}
	return b.String()
}

// eventuallyResolves polls Resolve until it returns want.
func eventuallyResolves(t *testing.T, r spi.Registry, service string, want []spi.Instance) {
	t.Helper()
	deadline := time.Now().Add(RegistryWait)
	var got []spi.Instance
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
		got, err = r.Resolve(ctx, service)
		cancel()
		if err == nil && sameInstances(got, want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling an external store's state
	}
	if err != nil {
		t.Fatalf("Resolve(%q): %v", service, err)
	}
	t.Fatalf("Resolve(%q) after %v:\n got %s\nwant %s", service, RegistryWait, describe(got), describe(want))
}

// nextUntil calls Next until it returns want, tolerating intermediate
// snapshots (watchers may coalesce or split changes).
func nextUntil(t *testing.T, w spi.Watcher, want []spi.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
	defer cancel()
	var seen []string
	for {
		got, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Watcher.Next: %v (waiting for %s; saw %d snapshots:%s)", err, describe(want), len(seen), strings.Join(seen, "\n\t--"))
		}
		if sameInstances(got, want) {
			return
		}
		seen = append(seen, describe(got))
	}
}

func firstNext(t *testing.T, w spi.Watcher) []spi.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
	defer cancel()
	got, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("first Watcher.Next must return the current snapshot at once: %v", err)
	}
	return got
}

// expectQuiet checks that Next blocks while nothing changes.
func expectQuiet(t *testing.T, w spi.Watcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), registryQuiet)
	defer cancel()
	got, err := w.Next(ctx)
	if err == nil {
		t.Fatalf("Watcher.Next returned a snapshot although nothing changed: %s", describe(got))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watcher.Next on an expired context: got %v, want an error matching context.DeadlineExceeded", err)
	}
}

func (s *registrySuite) testRegisterResolve(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	in1, in2 := instance(svc, 9001), instance(svc, 9002)
	in2.Weight = 0 // "default": must come back as 0, not rewritten
	in2.Tags = nil
	in2.Metadata = nil
	in2.Zone = ""
	mustRegister(t, a, in1)
	mustRegister(t, a, in2)
	eventuallyResolves(t, a, svc, []spi.Instance{in1, in2})
	eventuallyResolves(t, b, svc, []spi.Instance{in1, in2})
}

func (s *registrySuite) testResolveUnknown(t *testing.T) {
	a, _ := s.open(t)
	got, err := a.Resolve(opCtx(t), uniqueService(t, "nobody"))
	if err != nil {
		t.Fatalf("Resolve of an unknown service must not fail: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Resolve of an unknown service: got %s", describe(got))
	}
}

func (s *registrySuite) testReRegister(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	in := instance(svc, 9100)
	mustRegister(t, a, in)
	eventuallyResolves(t, b, svc, []spi.Instance{in})
	w := watch(t, b, svc)
	nextUntil(t, w, []spi.Instance{in})

	up := in
	up.Weight = 77
	up.Version = "v2.0.0"
	up.Zone = "zone-b"
	up.Tags = []string{"updated"}
	up.Metadata = map[string]string{"region": "us-east"}
	mustRegister(t, a, up)
	eventuallyResolves(t, b, svc, []spi.Instance{up})
	eventuallyResolves(t, a, svc, []spi.Instance{up})
	nextUntil(t, w, []spi.Instance{up})
}

func (s *registrySuite) testDeregister(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	in1, in2 := instance(svc, 9201), instance(svc, 9202)
	mustRegister(t, a, in1)
	mustRegister(t, a, in2)
	eventuallyResolves(t, b, svc, []spi.Instance{in1, in2})
	mustDeregister(t, a, in1)
	eventuallyResolves(t, b, svc, []spi.Instance{in2})
	eventuallyResolves(t, a, svc, []spi.Instance{in2})
	// Deregister needs only service and addr to identify the instance.
	mustDeregister(t, a, spi.Instance{Service: svc, Addr: in2.Addr})
	eventuallyResolves(t, b, svc, nil)
}

func (s *registrySuite) testDeregisterUnknown(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	mustDeregister(t, a, instance(svc, 9301))                       // unknown service
	mustDeregister(t, a, instance(uniqueService(t, "never"), 9302)) // another unknown service
	in := instance(svc, 9303)
	mustRegister(t, b, in)
	eventuallyResolves(t, a, svc, []spi.Instance{in})
	mustDeregister(t, a, instance(svc, 9304)) // known service, unknown addr
	mustDeregister(t, b, in)
	mustDeregister(t, b, in) // twice
	eventuallyResolves(t, a, svc, nil)
}

func (s *registrySuite) testWatchInitialEmpty(t *testing.T) {
	a, _ := s.open(t)
	w := watch(t, a, uniqueService(t, ""))
	if got := firstNext(t, w); len(got) != 0 {
		t.Fatalf("first Next on an unknown service: got %s, want an empty snapshot", describe(got))
	}
}

func (s *registrySuite) testWatchInitialSnapshot(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	in1, in2 := instance(svc, 9401), instance(svc, 9402)
	mustRegister(t, a, in1)
	mustRegister(t, a, in2)
	eventuallyResolves(t, b, svc, []spi.Instance{in1, in2})
	w := watch(t, b, svc)
	if got := firstNext(t, w); !sameInstances(got, []spi.Instance{in1, in2}) {
		t.Fatalf("first Next: got %s\nwant %s", describe(got), describe([]spi.Instance{in1, in2}))
	}
}

func (s *registrySuite) testWatchUpdates(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	w := watch(t, b, svc)
	firstNext(t, w)

	in1, in2 := instance(svc, 9501), instance(svc, 9502)
	mustRegister(t, a, in1)
	nextUntil(t, w, []spi.Instance{in1})
	mustRegister(t, a, in2)
	nextUntil(t, w, []spi.Instance{in1, in2})
	mustDeregister(t, a, in1)
	nextUntil(t, w, []spi.Instance{in2})
	mustDeregister(t, a, in2)
	nextUntil(t, w, nil)

	// A watch started through the registering client sees its own changes too.
	w2 := watch(t, a, svc)
	if got := firstNext(t, w2); len(got) != 0 {
		t.Fatalf("first Next: got %s, want empty", describe(got))
	}
	mustRegister(t, a, in1)
	nextUntil(t, w2, []spi.Instance{in1})
	nextUntil(t, w, []spi.Instance{in1})
}

func (s *registrySuite) testWatchNoDuplicates(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	in := instance(svc, 9601)
	mustRegister(t, a, in)
	w := watch(t, b, svc)
	nextUntil(t, w, []spi.Instance{in})
	// Nothing changes: Next must block rather than repeat the snapshot
	// (heartbeats, lease renewals and session pings are not changes).
	expectQuiet(t, w)
	// A change to another service is not a change to this one.
	mustRegister(t, a, instance(uniqueService(t, "other"), 9602))
	expectQuiet(t, w)
	// The watcher still works after a timed-out Next.
	in2 := instance(svc, 9603)
	mustRegister(t, a, in2)
	nextUntil(t, w, []spi.Instance{in, in2})
}

func (s *registrySuite) testWatchContext(t *testing.T) {
	a, _ := s.open(t)
	svc := uniqueService(t, "")
	w := watch(t, a, svc)
	firstNext(t, w)

	// An already cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on a cancelled context: got %v, want an error matching context.Canceled", err)
	}

	// Cancelled while blocked.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := w.Next(ctx)
		done <- err
	}()
	timer := time.AfterFunc(50*time.Millisecond, cancel)
	defer timer.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next cancelled while blocked: got %v, want an error matching context.Canceled", err)
		}
	case <-time.After(RegistryWait):
		t.Fatal("Next did not return after its context was cancelled")
	}

	// A deadline.
	expectQuiet(t, w)

	// The watch still delivers after cancelled Nexts.
	in := instance(svc, 9701)
	mustRegister(t, a, in)
	nextUntil(t, w, []spi.Instance{in})
}

func (s *registrySuite) testWatchStop(t *testing.T) {
	a, _ := s.open(t)
	svc := uniqueService(t, "")
	w := watch(t, a, svc)
	firstNext(t, w)

	done := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		done <- err
	}()
	timer := time.AfterFunc(50*time.Millisecond, w.Stop)
	defer timer.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next blocked across Stop returned no error")
		}
	case <-time.After(RegistryWait):
		t.Fatal("Next did not return after Stop")
	}
	w.Stop() // twice is fine
	if _, err := w.Next(context.Background()); err == nil {
		t.Fatal("Next after Stop returned no error")
	}
	// Changes after Stop do not resurrect the watcher.
	mustRegister(t, a, instance(svc, 9801))
	if _, err := w.Next(context.Background()); err == nil {
		t.Fatal("Next after Stop returned no error")
	}

	// Stop before the first Next.
	w2 := watch(t, a, svc)
	w2.Stop()
	if _, err := w2.Next(context.Background()); err == nil {
		t.Fatal("Next after Stop returned no error")
	}
}

func (s *registrySuite) testCloseWithdraws(t *testing.T) {
	a, closeA := s.open(t)
	b, _ := s.open(t)
	c, _ := s.open(t)
	svc := uniqueService(t, "")
	other := uniqueService(t, "other")
	inA1, inA2, inB := instance(svc, 9901), instance(svc, 9902), instance(svc, 9903)
	inOther := instance(other, 9904)
	mustRegister(t, a, inA1)
	mustRegister(t, a, inA2)
	mustRegister(t, a, inOther)
	mustRegister(t, b, inB)
	w := watch(t, c, svc)
	nextUntil(t, w, []spi.Instance{inA1, inA2, inB})

	if err := closeA(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	nextUntil(t, w, []spi.Instance{inB})
	eventuallyResolves(t, c, svc, []spi.Instance{inB})
	eventuallyResolves(t, c, other, nil)
}

func (s *registrySuite) testCloseEndsWatches(t *testing.T) {
	a, closeA := s.open(t)
	w := watch(t, a, uniqueService(t, ""))
	firstNext(t, w)
	if err := closeA(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
	defer cancel()
	if _, err := w.Next(ctx); err == nil {
		t.Fatal("Next on a watch of a closed registry returned no error")
	} else if ctx.Err() != nil {
		t.Fatalf("Next on a watch of a closed registry blocked until its deadline instead of failing: %v", err)
	}
}

func (s *registrySuite) testIsolation(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc1, svc2 := uniqueService(t, "one"), uniqueService(t, "two")
	// A name that is a prefix of another must not see the other's instances.
	svc3 := svc1 + "x"
	in1, in2, in3 := instance(svc1, 10001), instance(svc2, 10002), instance(svc3, 10003)
	// The same address under two services is two instances.
	in1b := instance(svc2, 10001)
	w1 := watch(t, b, svc1)
	firstNext(t, w1)
	mustRegister(t, a, in1)
	mustRegister(t, a, in2)
	mustRegister(t, a, in3)
	mustRegister(t, a, in1b)
	eventuallyResolves(t, b, svc1, []spi.Instance{in1})
	eventuallyResolves(t, b, svc2, []spi.Instance{in1b, in2})
	eventuallyResolves(t, b, svc3, []spi.Instance{in3})
	nextUntil(t, w1, []spi.Instance{in1})
	mustDeregister(t, a, in1b)
	eventuallyResolves(t, b, svc2, []spi.Instance{in2})
	eventuallyResolves(t, b, svc1, []spi.Instance{in1})
}

func (s *registrySuite) testConcurrent(t *testing.T) {
	a, _ := s.open(t)
	b, _ := s.open(t)
	svc := uniqueService(t, "")
	const n = 16
	w := watch(t, b, svc)
	firstNext(t, w)

	var want []spi.Instance
	for i := range n {
		want = append(want, instance(svc, 11000+i))
	}
	errs := make(chan error, 4*n)
	var wg sync.WaitGroup
	for i, in := range want {
		reg := a
		if i%2 == 1 {
			reg = b
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
			defer cancel()
			if err := reg.Register(ctx, in); err != nil {
				errs <- fmt.Errorf("register %v: %w", in, err)
			}
			if _, err := reg.Resolve(ctx, svc); err != nil {
				errs <- fmt.Errorf("resolve: %w", err)
			}
		})
		// Watches start and stop while registrations happen.
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
			defer cancel()
			cw, err := reg.Watch(ctx, svc)
			if err != nil {
				errs <- fmt.Errorf("watch: %w", err)
				return
			}
			defer cw.Stop()
			if _, err := cw.Next(ctx); err != nil {
				errs <- fmt.Errorf("first Next: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	eventuallyResolves(t, a, svc, want)
	eventuallyResolves(t, b, svc, want)
	nextUntil(t, w, want)

	errs = make(chan error, n)
	for i, in := range want[:n/2] {
		reg := a
		if i%2 == 1 {
			reg = b
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), RegistryWait)
			defer cancel()
			if err := reg.Deregister(ctx, in); err != nil {
				errs <- fmt.Errorf("Deregister(%v): %w", in, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventuallyResolves(t, a, svc, want[n/2:])
	nextUntil(t, w, want[n/2:])
}
