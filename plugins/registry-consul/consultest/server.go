package consultest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Consul constants the double reproduces.
const (
	// NodeName is the node every service is registered on.
	NodeName = "consultest"
	// Datacenter is the double's datacenter.
	Datacenter = "dc1"

	DefaultQueryTime = 5 * time.Minute  // Consul's default_query_time
	MaxQueryTime     = 10 * time.Minute // Consul's max_query_time
	jitterFraction   = 16               // structs.JitterFraction

	metaMaxKeyPairs    = 64
	metaKeyMaxLength   = 128
	metaValueMaxLength = 512
	metaReservedPrefix = "consul-"
)

// Options shape the double.
type Options struct {
	// Token, when set, turns on ACLs with a default-deny policy: a request
	// must carry this token (X-Consul-Token, Authorization: Bearer or
	// ?token=). Another token is "ACL not found"; none is "Permission
	// denied".
	Token string
}

// Check is a health check as the double stores it.
type Check struct {
	CheckID     string
	Name        string
	ServiceID   string
	ServiceName string
	Status      string
	Output      string
	TTL         time.Duration
	// DeregisterAfter is DeregisterCriticalServiceAfter (0: never).
	DeregisterAfter time.Duration
	CreateIndex     uint64
	ModifyIndex     uint64

	deadline      time.Time // TTL expiry while not critical
	criticalSince time.Time
}

// Service is a registered service instance as the double stores it.
type Service struct {
	ID          string
	Name        string
	Tags        []string
	Address     string
	Port        int
	Meta        map[string]string
	Passing     int // Weights.Passing
	Warning     int // Weights.Warning
	CreateIndex uint64
	ModifyIndex uint64
}

// Server is the running double.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string

	opts Options
	http *httptest.Server

	mu        sync.Mutex
	index     uint64              // the raft index of the last write
	services  map[string]*Service // by ID
	checks    map[string]*Check   // by CheckID
	nameIndex map[string]uint64   // service name -> index of its last change
	changed   chan struct{}       // closed and replaced on every write
	fault     struct {
		status int
		body   string
	}

	down   atomic.Bool
	stop   chan struct{}
	done   chan struct{}
	counts sync.Map // "METHOD path-prefix" -> *atomic.Int64
}

// NewServer starts a double on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:      opts,
		index:     10, // a fresh dev agent's catalog is not at 0 either
		services:  make(map[string]*Service),
		checks:    make(map[string]*Check),
		nameIndex: make(map[string]uint64),
		changed:   make(chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL
	go s.reap()
	return s
}

// Addr returns the double's host:port, as the registry's address setting.
func (s *Server) Addr() string { return strings.TrimPrefix(s.URL, "http://") }

// Close stops the server and its TTL timer.
func (s *Server) Close() {
	s.http.CloseClientConnections()
	s.http.Close()
	close(s.stop)
	<-s.done
}

// SetDown makes the server drop every connection without an answer (true)
// or serve again (false). TTLs keep running meanwhile.
func (s *Server) SetDown(down bool) {
	s.down.Store(down)
	if down {
		s.http.CloseClientConnections()
	}
}

// SetFault makes every request answer status with body (status 0: serve
// normally). A blocked query is not interrupted.
func (s *Server) SetFault(status int, body string) {
	s.mu.Lock()
	s.fault.status, s.fault.body = status, body
	s.mu.Unlock()
}

// Restart forgets every service and check, like a -dev agent restarted
// (its catalog is in memory). The index keeps growing.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.services {
		s.removeLocked(id)
	}
}

// Count returns how many requests were made whose "METHOD path" starts
// with prefix, e.g. "PUT /v1/agent/check/update/".
func (s *Server) Count(prefix string) int64 {
	var n int64
	s.counts.Range(func(k, v any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			n += v.(*atomic.Int64).Load()
		}
		return true
	})
	return n
}

// Services returns copies of the registered services named name (all when
// name is ""), sorted by ID.
func (s *Server) Services(name string) []Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Service
	for _, sv := range s.services {
		if name == "" || sv.Name == name {
			c := *sv
			c.Tags = append([]string(nil), sv.Tags...)
			c.Meta = copyMap(sv.Meta)
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CheckOf returns a copy of the check with the given id.
func (s *Server) CheckOf(id string) (Check, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.checks[id]
	if !ok {
		return Check{}, false
	}
	return *c, true
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// reap is the TTL timer: checks whose TTL ran out turn critical, and
// services critical for longer than their DeregisterAfter are removed.
func (s *Server) reap() {
	defer close(s.done)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, c := range s.checks {
				if c.TTL > 0 && c.Status != "critical" && now.After(c.deadline) {
					s.setStatusLocked(c, "critical", "TTL expired", now)
				}
			}
			for _, c := range s.checks {
				if c.DeregisterAfter > 0 && c.Status == "critical" && now.Sub(c.criticalSince) > c.DeregisterAfter {
					s.removeLocked(c.ServiceID)
				}
			}
			s.mu.Unlock()
		}
	}
}

// bumpLocked records a write affecting service name.
func (s *Server) bumpLocked(name string) uint64 {
	s.index++
	s.nameIndex[name] = s.index
	close(s.changed)
	s.changed = make(chan struct{})
	return s.index
}

func (s *Server) setStatusLocked(c *Check, status, output string, now time.Time) {
	if c.TTL > 0 {
		c.deadline = now.Add(c.TTL)
	}
	c.Output = output
	if c.Status == status {
		return // output-only changes are synced lazily by the agent
	}
	if status == "critical" {
		c.criticalSince = now
	}
	c.Status = status
	c.ModifyIndex = s.bumpLocked(c.ServiceName)
}

func (s *Server) removeLocked(id string) {
	sv, ok := s.services[id]
	if !ok {
		return
	}
	delete(s.services, id)
	for cid, c := range s.checks {
		if c.ServiceID == id {
			delete(s.checks, cid)
		}
	}
	s.bumpLocked(sv.Name)
}

// httpError is an error with its status, rendered as Consul renders
// HTTPError: the reason as plain text.
type httpError struct {
	status int
	reason string
}

func (e httpError) Error() string { return e.reason }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	key := r.Method + " " + r.URL.Path
	v, _ := s.counts.LoadOrStore(key, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)

	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault.status != 0 {
		w.WriteHeader(fault.status)
		_, _ = w.Write([]byte(fault.body))
		return
	}
	if err := s.authorize(r); err != nil {
		writeErr(w, err)
		return
	}
	p := r.URL.Path
	var err error
	switch {
	case p == "/v1/agent/service/register":
		err = s.method(r, http.MethodPut, func() error { return s.register(w, r) })
	case strings.HasPrefix(p, "/v1/agent/service/deregister/"):
		err = s.method(r, http.MethodPut, func() error { return s.deregister(w, strings.TrimPrefix(p, "/v1/agent/service/deregister/")) })
	case strings.HasPrefix(p, "/v1/agent/check/update/"):
		err = s.method(r, http.MethodPut, func() error { return s.checkUpdate(w, r, strings.TrimPrefix(p, "/v1/agent/check/update/")) })
	case strings.HasPrefix(p, "/v1/agent/check/pass/"), strings.HasPrefix(p, "/v1/agent/check/warn/"), strings.HasPrefix(p, "/v1/agent/check/fail/"):
		err = s.method(r, http.MethodPut, func() error { return s.checkLegacy(w, r) })
	case p == "/v1/agent/services":
		err = s.method(r, http.MethodGet, func() error { return s.agentServices(w) })
	case strings.HasPrefix(p, "/v1/health/service/"):
		err = s.method(r, http.MethodGet, func() error { return s.health(w, r, strings.TrimPrefix(p, "/v1/health/service/")) })
	case p == "/v1/status/leader":
		err = s.method(r, http.MethodGet, func() error {
			writeJSON(w, s.Addr())
			return nil
		})
	default:
		err = httpError{http.StatusNotFound, ""}
	}
	if err != nil {
		writeErr(w, err)
	}
}

func (s *Server) method(r *http.Request, want string, f func() error) error {
	if r.Method != want {
		return httpError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method)}
	}
	return f()
}

func writeErr(w http.ResponseWriter, err error) {
	he, ok := err.(httpError)
	if !ok {
		he = httpError{http.StatusInternalServerError, err.Error()}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(he.status)
	_, _ = w.Write([]byte(he.reason))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) authorize(r *http.Request) error {
	if s.opts.Token == "" {
		return nil
	}
	tok := r.Header.Get("X-Consul-Token")
	if tok == "" {
		tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	switch {
	case tok == "":
		return httpError{http.StatusForbidden, "Permission denied: anonymous token lacks permission 'service:write' on \"any\""}
	case tok != s.opts.Token:
		return httpError{http.StatusForbidden, "ACL not found"}
	}
	return nil
}

// registration is the JSON of api.AgentServiceRegistration, the fields
// the double understands.
type registration struct {
	ID      string
	Name    string
	Tags    []string
	Port    int
	Address string
	Meta    map[string]string
	Weights *struct{ Passing, Warning int }
	Check   *checkDef
	Checks  []*checkDef
}

type checkDef struct {
	CheckID                        string
	Name                           string
	TTL                            string
	Status                         string
	DeregisterCriticalServiceAfter string
	TCP                            string
	HTTP                           string
	Interval                       string
}

var metaKeyFormat = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString

// metaProblem is validateMetadata's verdict, in Consul's words ("" when
// the metadata is valid).
func metaProblem(meta map[string]string) string {
	if len(meta) > metaMaxKeyPairs {
		return fmt.Sprintf("Node metadata cannot contain more than %d key/value pairs", metaMaxKeyPairs)
	}
	for k, v := range meta {
		switch {
		case k == "":
			return "Key cannot be blank"
		case !metaKeyFormat(k):
			return "Key contains invalid characters"
		case len(k) > metaKeyMaxLength:
			return fmt.Sprintf("Key is too long (limit: %d characters)", metaKeyMaxLength)
		case strings.HasPrefix(k, metaReservedPrefix):
			return fmt.Sprintf("Key prefix '%s' is reserved for internal use", metaReservedPrefix)
		case len(v) > metaValueMaxLength:
			return fmt.Sprintf("Value is too long (limit: %d characters)", metaValueMaxLength)
		}
	}
	return ""
}

func parseDur(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	return time.ParseDuration(v)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var reg registration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		return httpError{http.StatusBadRequest, fmt.Sprintf("Request decode failed: %v", err)}
	}
	if reg.Name == "" {
		return httpError{http.StatusBadRequest, "Missing service name"}
	}
	if ip := net.ParseIP(reg.Address); ip != nil && ip.IsUnspecified() {
		return httpError{http.StatusBadRequest, "Invalid service address"}
	}
	passing, warning := 1, 1
	if reg.Weights != nil {
		switch {
		case reg.Weights.Passing < 1:
			return httpError{http.StatusBadRequest, "Invalid Weights: Passing must be greater than 0"}
		case reg.Weights.Warning < 0:
			return httpError{http.StatusBadRequest, "Invalid Weights: Warning must be greater or equal than 0"}
		case reg.Weights.Passing > 65535 || reg.Weights.Warning > 65535:
			return httpError{http.StatusBadRequest, "Invalid Weights: DNS Weight must be between 0 and 65535"}
		}
		passing, warning = reg.Weights.Passing, reg.Weights.Warning
	}
	if p := metaProblem(reg.Meta); p != "" {
		return httpError{http.StatusBadRequest, "Invalid Service Meta: " + p}
	}
	if reg.Port < 0 || reg.Port > 65535 {
		return httpError{http.StatusBadRequest, "Validation failed: invalid port"}
	}
	id := reg.ID
	if id == "" {
		id = reg.Name
	}
	defs := reg.Checks
	if reg.Check != nil {
		defs = append([]*checkDef{reg.Check}, defs...)
	}
	now := time.Now()
	var checks []*Check
	for i, d := range defs {
		if d.Status != "" && d.Status != "passing" && d.Status != "warning" && d.Status != "critical" {
			return httpError{http.StatusBadRequest, "Status for checks must 'passing', 'warning', 'critical'"}
		}
		ttl, err := parseDur(d.TTL)
		if err != nil {
			return httpError{http.StatusBadRequest, fmt.Sprintf("Request decode failed: TTL: %v", err)}
		}
		dereg, err := parseDur(d.DeregisterCriticalServiceAfter)
		if err != nil {
			return httpError{http.StatusBadRequest, fmt.Sprintf("Request decode failed: DeregisterCriticalServiceAfter: %v", err)}
		}
		if ttl <= 0 && d.TCP == "" && d.HTTP == "" {
			return httpError{http.StatusBadRequest, "Invalid check: TTL must be > 0 for TTL checks"}
		}
		cid := d.CheckID
		if cid == "" {
			cid = "service:" + id
			if len(defs) > 1 {
				cid += ":" + strconv.Itoa(i+1)
			}
		}
		status := d.Status
		if status == "" {
			status = "critical" // a new check starts critical unless told otherwise
		}
		name := d.Name
		if name == "" {
			name = "Service '" + reg.Name + "' check"
		}
		c := &Check{CheckID: cid, Name: name, ServiceID: id, ServiceName: reg.Name, Status: status,
			TTL: ttl, DeregisterAfter: dereg, deadline: now.Add(ttl)}
		if status == "critical" {
			c.criticalSince = now
		}
		checks = append(checks, c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.services[id]
	if old != nil && old.Name != reg.Name {
		s.removeLocked(id)
		old = nil
	}
	idx := s.bumpLocked(reg.Name)
	sv := &Service{ID: id, Name: reg.Name, Tags: reg.Tags, Address: reg.Address, Port: reg.Port,
		Meta: reg.Meta, Passing: passing, Warning: warning, CreateIndex: idx, ModifyIndex: idx}
	if old != nil {
		sv.CreateIndex = old.CreateIndex
	}
	s.services[id] = sv
	for cid, c := range s.checks {
		if c.ServiceID == id {
			delete(s.checks, cid)
		}
	}
	for _, c := range checks {
		c.CreateIndex, c.ModifyIndex = idx, idx
		s.checks[c.CheckID] = c
	}
	return nil
}

func (s *Server) deregister(w http.ResponseWriter, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[id]; !ok {
		return httpError{http.StatusNotFound, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)}
	}
	s.removeLocked(id)
	return nil
}

func (s *Server) checkUpdate(w http.ResponseWriter, r *http.Request, id string) error {
	var u struct{ Status, Output string }
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		return httpError{http.StatusBadRequest, fmt.Sprintf("Request decode failed: %v", err)}
	}
	switch u.Status {
	case "passing", "warning", "critical":
	default:
		return httpError{http.StatusBadRequest, fmt.Sprintf("Invalid check status: '%s'", u.Status)}
	}
	return s.updateTTL(id, u.Status, u.Output)
}

func (s *Server) checkLegacy(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/agent/check/")
	verb, id, _ := strings.Cut(rest, "/")
	status := map[string]string{"pass": "passing", "warn": "warning", "fail": "critical"}[verb]
	return s.updateTTL(id, status, r.URL.Query().Get("note"))
}

func (s *Server) updateTTL(id, status, output string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.checks[id]
	if !ok {
		return httpError{http.StatusNotFound, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)}
	}
	if c.TTL <= 0 {
		return fmt.Errorf("CheckID %q does not have associated TTL", id)
	}
	s.setStatusLocked(c, status, output, time.Now())
	return nil
}

type agentService struct {
	ID          string
	Service     string
	Tags        []string
	Meta        map[string]string
	Port        int
	Address     string
	Weights     struct{ Passing, Warning int }
	Datacenter  string
	CreateIndex uint64 `json:",omitempty"`
	ModifyIndex uint64 `json:",omitempty"`
}

func toAgentService(sv *Service) agentService {
	a := agentService{ID: sv.ID, Service: sv.Name, Tags: sv.Tags, Meta: sv.Meta, Port: sv.Port,
		Address: sv.Address, Datacenter: Datacenter, CreateIndex: sv.CreateIndex, ModifyIndex: sv.ModifyIndex}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	if a.Meta == nil {
		a.Meta = map[string]string{}
	}
	a.Weights.Passing, a.Weights.Warning = sv.Passing, sv.Warning
	return a
}

func (s *Server) agentServices(w http.ResponseWriter) error {
	s.mu.Lock()
	out := make(map[string]agentService, len(s.services))
	for id, sv := range s.services {
		out[id] = toAgentService(sv)
	}
	s.mu.Unlock()
	writeJSON(w, out)
	return nil
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node struct {
		ID, Node, Address, Datacenter string
		TaggedAddresses               map[string]string
		Meta                          map[string]string
		CreateIndex, ModifyIndex      uint64
	}
	Service agentService
	Checks  []healthCheck
}

// health is GET /v1/health/service/{name}: a blocking query.
func (s *Server) health(w http.ResponseWriter, r *http.Request, name string) error {
	if name == "" {
		return httpError{http.StatusBadRequest, "Missing service name"}
	}
	q := r.URL.Query()
	passing := false
	if _, ok := q["passing"]; ok {
		v := q.Get("passing")
		if v == "" {
			passing = true
		} else {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return httpError{http.StatusBadRequest, "Invalid value for ?passing"}
			}
			passing = b
		}
	}
	wait := DefaultQueryTime
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return httpError{http.StatusBadRequest, "Invalid wait time"}
		}
		if d > 0 {
			wait = min(d, MaxQueryTime)
		}
	}
	var minIndex uint64
	if v := q.Get("index"); v != "" {
		i, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return httpError{http.StatusBadRequest, "Invalid index"}
		}
		minIndex = i
	}
	wait += time.Duration(rand.Int64N(int64(wait/jitterFraction) + 1))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		idx := s.serviceIndexLocked(name)
		if minIndex == 0 || idx > minIndex {
			entries := s.entriesLocked(name, passing)
			s.mu.Unlock()
			writeQueryMeta(w, idx)
			writeJSON(w, entries)
			return nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			minIndex = 0 // answer whatever there is
		case <-r.Context().Done():
			return nil
		case <-s.stop:
			return nil
		}
	}
}

// serviceIndexLocked is the index a health query of name reports: that of
// the service's last change, or, for a service never seen, the index of
// the whole catalog (as Consul answers with the services table's index).
func (s *Server) serviceIndexLocked(name string) uint64 {
	if i, ok := s.nameIndex[name]; ok {
		return i
	}
	return s.index
}

func writeQueryMeta(w http.ResponseWriter, index uint64) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(index, 10))
	h.Set("X-Consul-KnownLeader", "true")
	h.Set("X-Consul-LastContact", "0")
	h.Set("X-Consul-Effective-Consistency", "leader")
}

func (s *Server) entriesLocked(name string, passing bool) []serviceEntry {
	out := []serviceEntry{}
	ids := make([]string, 0)
	for id, sv := range s.services {
		if sv.Name == name {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		sv := s.services[id]
		var e serviceEntry
		e.Node.ID = "00000000-0000-0000-0000-000000000001"
		e.Node.Node, e.Node.Address, e.Node.Datacenter = NodeName, "127.0.0.1", Datacenter
		e.Node.TaggedAddresses = map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"}
		e.Node.Meta = map[string]string{"consul-network-segment": ""}
		e.Node.CreateIndex, e.Node.ModifyIndex = 5, 5
		e.Service = toAgentService(sv)
		e.Checks = []healthCheck{{Node: NodeName, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing",
			Output: "Agent alive and reachable", ServiceTags: []string{}, Type: "serf", CreateIndex: 5, ModifyIndex: 5}}
		ok := true
		var cids []string
		for cid, c := range s.checks {
			if c.ServiceID == id {
				cids = append(cids, cid)
			}
		}
		sort.Strings(cids)
		for _, cid := range cids {
			c := s.checks[cid]
			typ := "ttl"
			if c.TTL <= 0 {
				typ = "tcp"
			}
			e.Checks = append(e.Checks, healthCheck{Node: NodeName, CheckID: c.CheckID, Name: c.Name, Status: c.Status,
				Output: c.Output, ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: e.Service.Tags,
				Type: typ, CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex})
			if c.Status != "passing" {
				ok = false
			}
		}
		if passing && !ok {
			continue
		}
		out = append(out, e)
	}
	return out
}
