// Package eurekatest is an in-process test double of the Eureka server's
// REST API (the /eureka/apps resources), for testing clients without a
// Eureka server.
//
// Written from Netflix Eureka's ApplicationsResource, ApplicationResource,
// InstanceResource and AbstractInstanceRegistry (v1.10.x / v2.0.x; the
// resources have not changed since 1.x): POST /eureka/apps/{APP} answers
// 204 (400 "Missing instanceId", "Missing hostname", "Missing appName",
// "Mismatched appName, expecting X but was Y"); PUT .../{id} (renew)
// answers 200, or 404 for an unknown instance or when the client's
// lastDirtyTimestamp is newer than the server's; DELETE .../{id} 200 or
// 404; PUT/DELETE .../{id}/status?value=OUT_OF_SERVICE set and remove a
// status override; GET /eureka/apps (full), /eureka/apps/delta and
// /eureka/apps/{APP} (404 when the application has no instance) in
// Eureka's JSON (ports as {"$":8080,"@enabled":"true"}, apps__hashcode as
// "DOWN_1_UP_2_", empty metadata as {"@class":"java.util.Collections$EmptyMap"}).
// Application names are upper-cased, as Eureka does.
//
// Leases: an instance renews every renewalIntervalInSecs; the eviction
// task (every EvictionInterval, Eureka: 60 s) removes leases not renewed
// for twice durationInSecs — Eureka adds the duration at renewal and again
// at the expiry check — and at most 15% of the registry per run. Self
// preservation (Eureka's default) is off unless Options.SelfPreservation
// is set. The delta holds the changes of the last DeltaRetention (Eureka:
// 3 min), each instance with its latest actionType. Unlike a real server,
// answers are not served from a 30 s response cache: a change is visible
// at the next read.
package eurekatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape the double.
type Options struct {
	// EvictionInterval is the period of the eviction task (Eureka: 60s).
	EvictionInterval time.Duration
	// DeltaRetention is how long changes stay in the delta (Eureka: 3m).
	DeltaRetention time.Duration
	// SelfPreservation stops eviction while fewer than 85% of the expected
	// renewals arrived (Eureka's default is on; the double's is off).
	SelfPreservation bool
}

// Instance is an instance as the double stores it.
type Instance struct {
	InstanceID       string
	App              string
	HostName         string
	IPAddr           string
	Port             int
	Status           string
	OverriddenStatus string
	VIPAddress       string
	Metadata         map[string]string
	RenewalSecs      int
	DurationSecs     int
	LastDirty        int64
	LastUpdated      int64
	ActionType       string

	registered  time.Time
	lastRenewal time.Time
}

type change struct {
	at   time.Time
	inst *Instance
}

// Server is the running double.
type Server struct {
	// URL is the base URL including the context path, e.g.
	// "http://127.0.0.1:41234/eureka".
	URL string

	opts Options
	http *httptest.Server

	mu      sync.Mutex
	apps    map[string]map[string]*Instance // APP -> id -> instance
	changes []change
	renews  int // renewals since the last eviction run
	fault   struct {
		status int
		body   string
	}

	stop   chan struct{}
	done   chan struct{}
	counts sync.Map
}

// NewServer starts a double on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	if opts.EvictionInterval <= 0 {
		opts.EvictionInterval = 60 * time.Second
	}
	if opts.DeltaRetention <= 0 {
		opts.DeltaRetention = 3 * time.Minute
	}
	s := &Server{opts: opts, apps: make(map[string]map[string]*Instance), stop: make(chan struct{}), done: make(chan struct{})}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL + "/eureka"
	go s.evictLoop()
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.http.CloseClientConnections()
	s.http.Close()
	close(s.stop)
	<-s.done
}

// SetFault makes every request answer status with body (0: serve normally).
func (s *Server) SetFault(status int, body string) {
	s.mu.Lock()
	s.fault.status, s.fault.body = status, body
	s.mu.Unlock()
}

// Restart forgets every instance (a restarted single server).
func (s *Server) Restart() {
	s.mu.Lock()
	s.apps = make(map[string]map[string]*Instance)
	s.changes = nil
	s.mu.Unlock()
}

// Count returns how many requests "METHOD path" had a path starting with
// prefix, e.g. "PUT /eureka/apps/".
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

// Instances returns copies of the instances of app, sorted by id.
func (s *Server) Instances(app string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, in := range s.apps[strings.ToUpper(app)] {
		c := *in
		c.Metadata = copyMap(in.Metadata)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *Server) evictLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.evict(now)
		}
	}
}

// evict is AbstractInstanceRegistry.evict.
func (s *Server) evict(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	renews := s.renews
	s.renews = 0
	var expired []*Instance
	size := 0
	expected := 0.0
	for _, ins := range s.apps {
		for _, in := range ins {
			size++
			if in.RenewalSecs > 0 {
				expected += s.opts.EvictionInterval.Seconds() / float64(in.RenewalSecs)
			}
			// lastUpdateTimestamp is set to now+duration at each renewal and
			// the check adds duration again: 2 x durationInSecs.
			if now.After(in.lastRenewal.Add(2 * time.Duration(in.DurationSecs) * time.Second)) {
				expired = append(expired, in)
			}
		}
	}
	if s.opts.SelfPreservation && float64(renews) < 0.85*expected {
		return
	}
	limit := size - int(float64(size)*0.85)
	sort.Slice(expired, func(i, j int) bool { return expired[i].InstanceID < expired[j].InstanceID })
	for i, in := range expired {
		if i >= limit {
			break
		}
		s.removeLocked(in, now)
	}
}

func (s *Server) removeLocked(in *Instance, now time.Time) {
	delete(s.apps[in.App], in.InstanceID)
	if len(s.apps[in.App]) == 0 {
		delete(s.apps, in.App)
	}
	in.ActionType = "DELETED"
	in.LastUpdated = now.UnixMilli()
	s.changes = append(s.changes, change{now, in})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	v, _ := s.counts.LoadOrStore(r.Method+" "+r.URL.Path, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault.status != 0 {
		w.WriteHeader(fault.status)
		_, _ = w.Write([]byte(fault.body))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/eureka/apps")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	switch {
	case len(parts) == 0 && r.Method == http.MethodGet:
		s.getApps(w, false)
	case len(parts) == 1 && parts[0] == "delta" && r.Method == http.MethodGet:
		s.getApps(w, true)
	case len(parts) == 1 && r.Method == http.MethodGet:
		s.getApp(w, strings.ToUpper(parts[0]))
	case len(parts) == 1 && r.Method == http.MethodPost:
		s.register(w, r, strings.ToUpper(parts[0]))
	case len(parts) == 2 && r.Method == http.MethodPut:
		s.renew(w, r, strings.ToUpper(parts[0]), parts[1])
	case len(parts) == 2 && r.Method == http.MethodDelete:
		s.cancel(w, strings.ToUpper(parts[0]), parts[1])
	case len(parts) == 2 && r.Method == http.MethodGet:
		s.getInstance(w, strings.ToUpper(parts[0]), parts[1])
	case len(parts) == 3 && parts[2] == "status" && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		s.status(w, r, strings.ToUpper(parts[0]), parts[1])
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// port is Eureka's {"$": 8080, "@enabled": "true"}; old servers write
// the number as a string.
type port struct {
	Number  json.Number `json:"$"`
	Enabled string      `json:"@enabled"`
}

type instanceJSON struct {
	InstanceID       string            `json:"instanceId"`
	HostName         string            `json:"hostName"`
	App              string            `json:"app"`
	IPAddr           string            `json:"ipAddr"`
	Status           string            `json:"status"`
	OverriddenStatus string            `json:"overriddenStatus,omitempty"`
	Port             *port             `json:"port,omitempty"`
	SecurePort       *port             `json:"securePort,omitempty"`
	CountryID        int               `json:"countryId"`
	DataCenterInfo   map[string]string `json:"dataCenterInfo,omitempty"`
	LeaseInfo        *struct {
		RenewalIntervalInSecs int   `json:"renewalIntervalInSecs"`
		DurationInSecs        int   `json:"durationInSecs"`
		RegistrationTimestamp int64 `json:"registrationTimestamp"`
		LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp"`
		EvictionTimestamp     int64 `json:"evictionTimestamp"`
		ServiceUpTimestamp    int64 `json:"serviceUpTimestamp"`
	} `json:"leaseInfo,omitempty"`
	Metadata                      map[string]string `json:"metadata,omitempty"`
	VIPAddress                    string            `json:"vipAddress,omitempty"`
	SecureVIPAddress              string            `json:"secureVipAddress,omitempty"`
	HomePageURL                   string            `json:"homePageUrl,omitempty"`
	IsCoordinatingDiscoveryServer string            `json:"isCoordinatingDiscoveryServer,omitempty"`
	LastUpdatedTimestamp          string            `json:"lastUpdatedTimestamp,omitempty"`
	LastDirtyTimestamp            string            `json:"lastDirtyTimestamp,omitempty"`
	ActionType                    string            `json:"actionType,omitempty"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, app string) {
	var body struct {
		Instance instanceJSON `json:"instance"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		// Jersey's JSON provider rejects a body it cannot map.
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ij := body.Instance
	switch {
	case ij.InstanceID == "":
		badRequest(w, "Missing instanceId")
		return
	case ij.HostName == "":
		badRequest(w, "Missing hostname")
		return
	case ij.App == "":
		badRequest(w, "Missing appName")
		return
	case strings.ToUpper(ij.App) != app:
		badRequest(w, "Mismatched appName, expecting "+app+" but was "+strings.ToUpper(ij.App))
		return
	}
	now := time.Now()
	in := &Instance{InstanceID: ij.InstanceID, App: app, HostName: ij.HostName, IPAddr: ij.IPAddr,
		Status: ij.Status, VIPAddress: ij.VIPAddress, Metadata: ij.Metadata, RenewalSecs: 30, DurationSecs: 90,
		registered: now, lastRenewal: now, ActionType: "ADDED", LastUpdated: now.UnixMilli()}
	delete(in.Metadata, "@class")
	if in.Status == "" {
		in.Status = "UP"
	}
	if ij.Port != nil {
		p, _ := strconv.Atoi(ij.Port.Number.String())
		in.Port = p
	}
	if ij.LeaseInfo != nil {
		if ij.LeaseInfo.RenewalIntervalInSecs > 0 {
			in.RenewalSecs = ij.LeaseInfo.RenewalIntervalInSecs
		}
		if ij.LeaseInfo.DurationInSecs > 0 {
			in.DurationSecs = ij.LeaseInfo.DurationInSecs
		}
	}
	in.LastDirty, _ = strconv.ParseInt(ij.LastDirtyTimestamp, 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	ins := s.apps[app]
	if ins == nil {
		ins = make(map[string]*Instance)
		s.apps[app] = ins
	}
	if old := ins[in.InstanceID]; old != nil {
		in.registered = old.registered
		in.OverriddenStatus = old.OverriddenStatus
		in.ActionType = "MODIFIED"
		if old.OverriddenStatus != "" {
			in.Status = old.OverriddenStatus
		}
	}
	ins[in.InstanceID] = in
	s.changes = append(s.changes, change{now, in})
	w.WriteHeader(http.StatusNoContent)
}

func badRequest(w http.ResponseWriter, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte(msg))
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, app, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.apps[app][id]
	if in == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	in.lastRenewal = time.Now()
	s.renews++
	if v := r.URL.Query().Get("lastDirtyTimestamp"); v != "" {
		if d, err := strconv.ParseInt(v, 10, 64); err == nil && d > in.LastDirty {
			// The client holds newer data: it must register again.
			w.WriteHeader(http.StatusNotFound)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) cancel(w http.ResponseWriter, app, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.apps[app][id]
	if in == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s.removeLocked(in, time.Now())
	w.WriteHeader(http.StatusOK)
}

var validStatus = map[string]bool{"UP": true, "DOWN": true, "STARTING": true, "OUT_OF_SERVICE": true, "UNKNOWN": true}

func (s *Server) status(w http.ResponseWriter, r *http.Request, app, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.apps[app][id]
	if in == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	v := r.URL.Query().Get("value")
	now := time.Now()
	if r.Method == http.MethodPut {
		if !validStatus[v] {
			// InstanceStatus.valueOf throws: Eureka answers 500.
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		in.OverriddenStatus, in.Status = v, v
	} else {
		in.OverriddenStatus = ""
		if v == "" {
			v = "UNKNOWN"
		}
		if !validStatus[v] {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		in.Status = v
	}
	in.ActionType = "MODIFIED"
	in.LastUpdated = now.UnixMilli()
	s.changes = append(s.changes, change{now, in})
	w.WriteHeader(http.StatusOK)
}

func render(in *Instance) instanceJSON {
	ij := instanceJSON{InstanceID: in.InstanceID, HostName: in.HostName, App: in.App, IPAddr: in.IPAddr,
		Status: in.Status, OverriddenStatus: "UNKNOWN", CountryID: 1, VIPAddress: in.VIPAddress,
		SecureVIPAddress: in.VIPAddress, IsCoordinatingDiscoveryServer: "false",
		LastUpdatedTimestamp: strconv.FormatInt(in.LastUpdated, 10), LastDirtyTimestamp: strconv.FormatInt(in.LastDirty, 10),
		ActionType:     in.ActionType,
		Port:           &port{Number: json.Number(strconv.Itoa(in.Port)), Enabled: "true"},
		SecurePort:     &port{Number: "443", Enabled: "false"},
		DataCenterInfo: map[string]string{"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
		Metadata:       copyMap(in.Metadata),
	}
	if in.OverriddenStatus != "" {
		ij.OverriddenStatus = in.OverriddenStatus
	}
	if len(ij.Metadata) == 0 {
		ij.Metadata = map[string]string{"@class": "java.util.Collections$EmptyMap"}
	}
	ij.LeaseInfo = &struct {
		RenewalIntervalInSecs int   `json:"renewalIntervalInSecs"`
		DurationInSecs        int   `json:"durationInSecs"`
		RegistrationTimestamp int64 `json:"registrationTimestamp"`
		LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp"`
		EvictionTimestamp     int64 `json:"evictionTimestamp"`
		ServiceUpTimestamp    int64 `json:"serviceUpTimestamp"`
	}{in.RenewalSecs, in.DurationSecs, in.registered.UnixMilli(), in.lastRenewal.UnixMilli(), 0, in.registered.UnixMilli()}
	return ij
}

type appJSON struct {
	Name     string         `json:"name"`
	Instance []instanceJSON `json:"instance"`
}

// hashLocked is getReconcileHashCode: "STATUS_count_" per status, sorted.
func (s *Server) hashLocked() string {
	counts := map[string]int{}
	for _, ins := range s.apps {
		for _, in := range ins {
			counts[in.Status]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s_%d_", k, counts[k])
	}
	return b.String()
}

func sortedApps(m map[string][]*Instance) []appJSON {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []appJSON{}
	for _, n := range names {
		list := m[n]
		sort.Slice(list, func(i, j int) bool { return list[i].InstanceID < list[j].InstanceID })
		a := appJSON{Name: n}
		for _, in := range list {
			a.Instance = append(a.Instance, render(in))
		}
		out = append(out, a)
	}
	return out
}

func (s *Server) getApps(w http.ResponseWriter, delta bool) {
	s.mu.Lock()
	now := time.Now()
	byApp := map[string][]*Instance{}
	if delta {
		// Application.addInstance keeps one entry per id: the latest change.
		keep := s.changes[:0]
		latest := map[string]*Instance{}
		for _, c := range s.changes {
			if now.Sub(c.at) > s.opts.DeltaRetention {
				continue
			}
			keep = append(keep, c)
			latest[c.inst.App+"/"+c.inst.InstanceID] = c.inst
		}
		s.changes = keep
		for _, in := range latest {
			byApp[in.App] = append(byApp[in.App], in)
		}
	} else {
		for app, ins := range s.apps {
			for _, in := range ins {
				byApp[app] = append(byApp[app], in)
			}
		}
	}
	body := map[string]any{"applications": map[string]any{
		"versions__delta": "1",
		"apps__hashcode":  s.hashLocked(),
		"application":     sortedApps(byApp),
	}}
	s.mu.Unlock()
	writeJSON(w, body)
}

func (s *Server) getApp(w http.ResponseWriter, app string) {
	s.mu.Lock()
	ins := s.apps[app]
	if len(ins) == 0 {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	list := make([]*Instance, 0, len(ins))
	for _, in := range ins {
		list = append(list, in)
	}
	a := sortedApps(map[string][]*Instance{app: list})[0]
	s.mu.Unlock()
	writeJSON(w, map[string]any{"application": a})
}

func (s *Server) getInstance(w http.ResponseWriter, app, id string) {
	s.mu.Lock()
	in := s.apps[app][id]
	if in == nil {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	ij := render(in)
	s.mu.Unlock()
	writeJSON(w, map[string]any{"instance": ij})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
