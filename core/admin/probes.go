package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// HealthSource is what the probe listener needs of a process: each
// server's health, cheaply (a kubelet polls it every few seconds).
type HealthSource interface {
	Health() []ServerHealth
}

// ProbeOptions configure a Probes listener.
type ProbeOptions struct {
	// Listen is the "host:port" to serve on; port 0 picks one. Probes
	// are meant to bind the pod IP (":9101"), unlike the admin listener.
	Listen string
	// Source reports the servers' health; required.
	Source HealthSource
	// WantServers makes /readyz answer 503 until at least one server is
	// listed: a process that will serve is not ready before its first
	// server has registered. A client-only process leaves it false.
	WantServers bool
	// Logger receives the listener's events; nil means hclog.Default().
	Logger hclog.Logger
}

// Probes is the Kubernetes probe listener: /healthz (liveness, also as
// /livez) and /readyz (readiness), GET or HEAD, and nothing else. It shows no
// configuration, metrics or profiles, so it can bind the pod IP where
// the admin listener must not.
type Probes struct {
	opts    ProbeOptions
	log     hclog.Logger
	handler http.Handler
	l       listener
}

// NewProbes returns a probe listener; Start begins serving.
func NewProbes(o ProbeOptions) (*Probes, error) {
	if o.Source == nil {
		return nil, errors.New("admin: ProbeOptions.Source is required")
	}
	if o.Logger == nil {
		o.Logger = hclog.Default()
	}
	p := &Probes{opts: o, log: o.Logger.Named("probes")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", p.livez)
	// /livez is the name the Kubernetes API server itself uses for
	// liveness (its /healthz is deprecated there); same answer.
	mux.HandleFunc("GET /livez", p.livez)
	mux.HandleFunc("GET /readyz", p.readyz)
	p.handler = mux
	return p, nil
}

// Handler returns the two probe endpoints as one handler.
func (p *Probes) Handler() http.Handler { return p.handler }

// Start listens on ProbeOptions.Listen and serves in the background. It
// returns once the listener is bound.
func (p *Probes) Start() error {
	if err := p.l.start("probe", p.opts.Listen, p.handler, p.log); err != nil {
		return err
	}
	p.log.Info("probe listener serving", "addr", p.Addr(), "liveness", "/healthz", "readiness", "/readyz")
	return nil
}

// Addr returns the bound address ("" before Start).
func (p *Probes) Addr() string { return p.l.addr() }

// Close stops the listener within ctx.
func (p *Probes) Close(ctx context.Context) error { return p.l.close(ctx) }

// Live reports liveness: the process is live while every server it
// serves is starting, serving or draining. A server that stopped while
// the process stays up (its Serve returned, its listener failed) makes
// it not live, so the kubelet restarts the container. A draining server
// is live: restarting it would cut the calls it is finishing.
func Live(servers []ServerHealth) (bool, string) {
	for _, sv := range servers {
		if sv.State == StateStopped {
			return false, fmt.Sprintf("server %s stopped", sv.Name)
		}
	}
	return true, "ok"
}

// Ready reports readiness: every server is serving with status SERVING
// (so not while starting, before its services are registered, nor
// while draining or stopped), and, when wantServers, at least one
// server is listed.
func Ready(servers []ServerHealth, wantServers bool) (bool, string) {
	if wantServers && len(servers) == 0 {
		return false, "no server started yet"
	}
	for _, sv := range servers {
		if sv.State != StateServing {
			return false, fmt.Sprintf("server %s is %s", sv.Name, sv.State)
		}
		if sv.Status != "SERVING" {
			return false, fmt.Sprintf("server %s is %s", sv.Name, strings.ToLower(strings.ReplaceAll(sv.Status, "_", " ")))
		}
	}
	return true, "ok"
}

func (p *Probes) livez(w http.ResponseWriter, _ *http.Request) {
	ok, why := Live(p.opts.Source.Health())
	probeAnswer(w, ok, why)
}

func (p *Probes) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := Ready(p.opts.Source.Health(), p.opts.WantServers)
	probeAnswer(w, ok, why)
}

// probeAnswer writes 200 or 503 with a one-line reason, which the
// kubelet records in the probe-failure event.
func probeAnswer(w http.ResponseWriter, ok bool, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, why)
}

// listener is an HTTP listener started once and closed once, shared by
// the admin and probe listeners.
type listener struct {
	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func (l *listener) start(name, addr string, h http.Handler, log hclog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv != nil {
		return fmt.Errorf("%s listener: already started", name)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listener: listening on %s: %w", name, addr, err)
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	l.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" listener stopped", "error", err)
		}
	}(l.srv, l.done)
	return nil
}

func (l *listener) addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

func (l *listener) close(ctx context.Context) error {
	l.mu.Lock()
	srv, done := l.srv, l.done
	l.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-done
	return err
}
