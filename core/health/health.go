package health

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
)

// ServiceName is the name the health service is registered under.
const ServiceName = "Health"

// Status is a service's health.
type Status string

// Statuses, named as grpc.health.v1's ServingStatus values.
const (
	Serving    Status = "SERVING"
	NotServing Status = "NOT_SERVING"
	// ServiceUnknown is what Watch sends while the service watched is
	// not known (yet), as gRPC's health server does; Check answers
	// NotFound instead.
	ServiceUnknown Status = "SERVICE_UNKNOWN"
	// Unknown is grpc.health.v1's UNKNOWN (0), which this service never
	// reports itself.
	Unknown Status = "UNKNOWN"
)

// CheckRequest asks for one service's status; Service "" means the server
// as a whole.
type CheckRequest struct {
	Service string `json:"service"`
}

// CheckResponse carries a status.
type CheckResponse struct {
	Status Status `json:"status"`
}

// Service holds the statuses a server reports. The zero value is not
// usable; call NewService. It is safe for concurrent use.
type Service struct {
	mu       sync.Mutex
	statuses map[string]Status
	shutdown bool
	changed  chan struct{} // closed and replaced on every change
}

// NewService returns a health service whose server as a whole ("")
// reports SERVING and which knows no other service yet.
func NewService() *Service {
	return &Service{
		statuses: map[string]Status{"": Serving},
		changed:  make(chan struct{}),
	}
}

// SetServing sets service's status to SERVING or NOT_SERVING. After
// Shutdown it does nothing.
func (s *Service) SetServing(service string, serving bool) {
	st := NotServing
	if serving {
		st = Serving
	}
	s.SetStatus(service, st)
}

// SetStatus sets service's status. After Shutdown it does nothing.
func (s *Service) SetStatus(service string, st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	s.set(service, st)
}

func (s *Service) set(service string, st Status) {
	if cur, ok := s.statuses[service]; ok && cur == st {
		return
	}
	s.statuses[service] = st
	close(s.changed)
	s.changed = make(chan struct{})
}

// Shutdown sets every status to NOT_SERVING and keeps them there: later
// SetServing calls are ignored until Resume. Watch streams send the
// NOT_SERVING and stay open, as with gRPC's health server; they end when
// their server stops (see Register).
func (s *Service) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = true
	for name := range s.statuses {
		s.statuses[name] = NotServing
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Resume undoes Shutdown as gRPC's health server does: every status
// turns SERVING, Watch streams send it, and statuses may change again.
func (s *Service) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = false
	for name := range s.statuses {
		s.statuses[name] = Serving
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// ShuttingDown reports whether Shutdown was called (and not resumed).
func (s *Service) ShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// Status returns service's status and whether the service is known.
func (s *Service) Status(service string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statuses[service]
	return st, ok
}

// Statuses returns a copy of every status, the server's own under "".
func (s *Service) Statuses() map[string]Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Status, len(s.statuses))
	for k, v := range s.statuses {
		out[k] = v
	}
	return out
}

// Services returns the names of the services with a status, sorted,
// without the server's own "".
func (s *Service) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.statuses))
	for k := range s.statuses {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Check answers the status of req.Service; NotFound for a service the
// server does not know. A short name ("Inventory") also finds the one
// service known by a full name ending in it ("eco.v1.Inventory"), as a
// call's short method name does (docs/PROTOCOL.md, "Method names").
func (s *Service) Check(_ context.Context, req *CheckRequest) (*CheckResponse, error) {
	var name string
	if req != nil {
		name = req.Service
	}
	s.mu.Lock()
	st, ok := s.lookupLocked(name)
	s.mu.Unlock()
	if !ok {
		return nil, spi.Errorf(spi.NotFound, "health: unknown service %q", name)
	}
	return &CheckResponse{Status: st}, nil
}

// lookupLocked finds service's status: by its name, else, for a short
// name, the one full name ending in ".<name>" (none when two are known:
// ambiguous). s.mu is held.
func (s *Service) lookupLocked(service string) (Status, bool) {
	if st, ok := s.statuses[service]; ok {
		return st, true
	}
	if service == "" || strings.Contains(service, ".") {
		return "", false
	}
	var st Status
	n := 0
	for k, v := range s.statuses {
		if strings.HasSuffix(k, "."+service) {
			st = v
			n++
		}
	}
	return st, n == 1
}

// Watch calls send with service's status now and after every change
// (SERVICE_UNKNOWN while the service is not known), through Shutdown
// (NOT_SERVING) and Resume (SERVING), until ctx ends or send fails.
func (s *Service) Watch(ctx context.Context, service string, send func(*CheckResponse) error) error {
	return s.WatchUntil(ctx, service, nil, send)
}

// WatchUntil is Watch that also ends, returning nil, once stop is closed
// — its server has begun to stop — after sending NOT_SERVING unless that
// was the last status sent. A watch would otherwise hold a graceful
// drain for its whole timeout (a stream in progress is waited for).
func (s *Service) WatchUntil(ctx context.Context, service string, stop <-chan struct{}, send func(*CheckResponse) error) error {
	var last Status
	for {
		s.mu.Lock()
		st, ok := s.lookupLocked(service)
		if !ok {
			st = ServiceUnknown
		}
		changed := s.changed
		s.mu.Unlock()
		if st != last {
			if err := send(&CheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-changed:
		case <-stop:
			if last != NotServing {
				if err := send(&CheckResponse{Status: NotServing}); err != nil {
					return err
				}
			}
			return nil
		case <-ctx.Done():
			return spi.AsError(ctx.Err())
		}
	}
}

// Desc describes the health service for core.Server.RegisterService; its
// handlers call Check and Watch directly, without reflection. Register
// it with a *Service as the implementation. Its Watch streams end only
// with their callers; Register's also end when the server stops.
func Desc() *core.ServiceDesc { return desc(nil) }

func desc(stop <-chan struct{}) *core.ServiceDesc {
	return &core.ServiceDesc{
		Name: ServiceName,
		Methods: []core.MethodDesc{{
			Name:       "Check",
			NewRequest: func() any { return new(CheckRequest) },
			Handler: func(ctx context.Context, srv any, req any) (any, error) {
				return srv.(*Service).Check(ctx, req.(*CheckRequest))
			},
			Idempotent: true,
		}},
		Streams: []core.StreamDesc{{
			Name: "Watch",
			Handler: func(ctx context.Context, srv any, st *core.Stream) error {
				var req CheckRequest
				if err := st.Recv(&req); err != nil {
					return spi.WrapError(spi.InvalidArgument, err, "health: Watch needs a CheckRequest first")
				}
				return srv.(*Service).WatchUntil(ctx, req.Service, stop, func(r *CheckResponse) error { return st.Send(r) })
			},
		}},
	}
}

// Register registers s as service "Health" on srv. Watch streams end
// (after NOT_SERVING) once srv begins to stop, so they never hold its
// graceful Shutdown.
func Register(srv *core.Server, s *Service) error {
	return srv.RegisterService(desc(srv.Stopping()), s)
}

// Check asks a server for service's status through c (a client of any
// service: every Kite server built by core/stack serves Health).
func Check(ctx context.Context, c *core.Client, service string) (Status, error) {
	var resp CheckResponse
	if err := c.Call(ctx, ServiceName+".Check", &CheckRequest{Service: service}, &resp); err != nil {
		return "", err
	}
	return resp.Status, nil
}

// Watcher follows one service's status on a server.
type Watcher struct {
	st *core.Stream
}

// Watch opens a Health.Watch stream through c for service.
func Watch(ctx context.Context, c *core.Client, service string) (*Watcher, error) {
	st, err := c.Stream(ctx, ServiceName+".Watch")
	if err != nil {
		return nil, err
	}
	if err := st.Send(&CheckRequest{Service: service}); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	return &Watcher{st: st}, nil
}

// Next returns the next status; io.EOF when the server ended the watch
// (it does when the server stops, after reporting NOT_SERVING).
func (w *Watcher) Next() (Status, error) {
	var resp CheckResponse
	if err := w.st.Recv(&resp); err != nil {
		return "", err
	}
	return resp.Status, nil
}
