package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server.
type Options struct {
	// Listen is the "host:port" to serve on; port 0 picks one.
	Listen string
	// Pprof mounts /debug/pprof/ (off unless asked: kite.hcl's
	// admin { pprof = true }).
	Pprof bool
	// Source is what the pages show; required.
	Source Source
	// Gatherer backs /metrics; nil means prometheus.DefaultGatherer,
	// where the metrics filter registers by default.
	Gatherer prometheus.Gatherer
	// Logger receives the listener's events; nil means hclog.Default().
	Logger hclog.Logger
	// SnapshotTimeout bounds the registry lookups of one status page;
	// default 2 s.
	SnapshotTimeout time.Duration
}

// Server is the admin HTTP listener.
type Server struct {
	opts    Options
	log     hclog.Logger
	handler http.Handler
	l       listener
}

// New returns an admin server; Start begins serving.
func New(o Options) (*Server, error) {
	if o.Source == nil {
		return nil, errors.New("admin: Options.Source is required")
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.Logger == nil {
		o.Logger = hclog.Default()
	}
	if o.SnapshotTimeout <= 0 {
		o.SnapshotTimeout = 2 * time.Second
	}
	s := &Server{opts: o, log: o.Logger.Named("admin")}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the admin endpoints as one handler, for programs that
// mount them on a server of their own.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: promLogger{s.log}}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /{$}", s.statusPage)
	if s.opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Start listens on Options.Listen and serves in the background. It
// returns once the listener is bound.
func (s *Server) Start() error {
	if err := s.l.start("admin", s.opts.Listen, s.handler, s.log); err != nil {
		return err
	}
	s.log.Info("admin listener serving", "addr", s.Addr(), "pprof", s.opts.Pprof)
	return nil
}

// Addr returns the bound address ("" before Start).
func (s *Server) Addr() string { return s.l.addr() }

// Close stops the listener, letting requests in progress finish within
// ctx (a pprof profile in progress is cut off when ctx ends).
func (s *Server) Close(ctx context.Context) error { return s.l.close(ctx) }

// HealthBody is /healthz's JSON answer.
type HealthBody struct {
	// Status is "SERVING" when every server is, else "NOT_SERVING".
	Status  string         `json:"status"`
	Servers []ServerHealth `json:"servers"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	servers := s.opts.Source.Health()
	body := HealthBody{Status: "SERVING", Servers: servers}
	if body.Servers == nil {
		body.Servers = []ServerHealth{}
	}
	for _, sv := range servers {
		if sv.State != StateServing || sv.Status != "SERVING" {
			body.Status = "NOT_SERVING"
		}
	}
	code := http.StatusOK
	if body.Status != "SERVING" {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

// promLogger adapts hclog to promhttp's error logger.
type promLogger struct{ l hclog.Logger }

func (p promLogger) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
