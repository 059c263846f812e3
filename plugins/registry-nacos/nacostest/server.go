package nacostest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
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

// Nacos constants the double reproduces.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"

	// CodeOK and CodeResourceNotFound are the "code" values of a beat
	// response (NamingResponseCode).
	CodeOK               = 10200
	CodeResourceNotFound = 20404
)

// Options shape the double. The zero value behaves like a stock Nacos
// 1.4 without authentication.
type Options struct {
	// UnhealthyAfter is how long an ephemeral instance stays healthy
	// without a beat (Nacos: 15s).
	UnhealthyAfter time.Duration
	// DeleteAfter is how long an ephemeral instance lives without a beat
	// (Nacos: 30s).
	DeleteAfter time.Duration
	// ClientBeatInterval is returned by beats as clientBeatInterval
	// (Nacos: 5s).
	ClientBeatInterval time.Duration
	// CacheMillis is returned by list as cacheMillis (Nacos: 10000).
	CacheMillis int
	// LightBeatDisabled makes beats answer lightBeatEnabled=false, as
	// servers before 1.4 did.
	LightBeatDisabled bool
	// ProtectThreshold is the services' protect threshold (Nacos: 0).
	ProtectThreshold float64
	// Username and Password enable authentication when Username is set.
	Username, Password string
	// TokenTTL is the lifetime of access tokens (Nacos: 18000s).
	TokenTTL time.Duration
	// V1Disabled answers 410 Gone to every /nacos/v1/ns/... request, as
	// Nacos 3 does with nacos.core.api.compatibility.client.enabled=false.
	V1Disabled bool
}

// Instance is an instance as the double stores it.
type Instance struct {
	InstanceID  string
	IP          string
	Port        int
	Weight      float64
	Healthy     bool
	Enabled     bool
	Ephemeral   bool
	ClusterName string
	ServiceName string // grouped: GROUP@@service
	Metadata    map[string]string
	LastBeat    time.Time
}

type service struct {
	name      string // grouped
	instances map[string]*Instance
	checksum  string
}

// Server is the running double.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234"; clients append
	// /nacos/v1/....
	URL string

	opts Options
	http *httptest.Server

	mu         sync.Mutex
	namespaces map[string]map[string]*service // namespace -> grouped name -> service
	tokens     map[string]time.Time           // token -> expiry

	down   atomic.Bool
	counts sync.Map // "METHOD path" -> *atomic.Int64
}

// NewServer starts a double on a loopback port. Close it when done.
func NewServer(opts Options) *Server {
	if opts.UnhealthyAfter <= 0 {
		opts.UnhealthyAfter = 15 * time.Second
	}
	if opts.DeleteAfter <= 0 {
		opts.DeleteAfter = 30 * time.Second
	}
	if opts.ClientBeatInterval <= 0 {
		opts.ClientBeatInterval = 5 * time.Second
	}
	if opts.CacheMillis <= 0 {
		opts.CacheMillis = 10000
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 18000 * time.Second
	}
	s := &Server{
		opts:       opts,
		namespaces: make(map[string]map[string]*service),
		tokens:     make(map[string]time.Time),
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.http.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// SetDown makes the server drop every connection without an answer (true)
// or serve again (false), like a crashed or partitioned Nacos. Data is
// kept, but beats missed meanwhile count.
func (s *Server) SetDown(down bool) {
	s.down.Store(down)
	if down {
		s.http.CloseClientConnections()
	}
}

// Reset forgets every instance, like a restarted Nacos whose ephemeral
// data is gone.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces = make(map[string]map[string]*service)
}

// ExpireTokens invalidates every access token issued so far.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.tokens {
		s.tokens[t] = time.Time{}
	}
}

// Count returns how many requests "METHOD /path" were answered (e.g.
// "PUT /nacos/v1/ns/instance/beat"), including rejected ones.
func (s *Server) Count(methodPath string) int64 {
	if v, ok := s.counts.Load(methodPath); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Instances returns copies of the instances of a service as stored,
// healthy or not, after applying beat expiry. namespace "" is public;
// service may be grouped or not (then DEFAULT_GROUP).
func (s *Server) Instances(namespace, svc string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(time.Now())
	sv := s.namespaces[nsOrDefault(namespace)][groupedName(svc, "")]
	if sv == nil {
		return nil
	}
	var out []Instance
	for _, in := range sv.sortedInstances() {
		c := *in
		c.Metadata = copyMap(in.Metadata)
		out = append(out, c)
	}
	return out
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// groupedName follows NamingUtils.getGroupedName and the ServiceNameFilter:
// a name that already holds "@@" is used as is.
func groupedName(name, group string) string {
	if strings.Contains(name, "@@") {
		return name
	}
	if group == "" {
		group = DefaultGroup
	}
	return group + "@@" + name
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// badRequest is an IllegalArgumentException as Nacos renders it.
type badRequest string

func required(r *http.Request, key string) (string, error) {
	v := r.Form.Get(key)
	if strings.TrimSpace(v) == "" {
		return "", badRequest("Param '" + key + "' is required.")
	}
	return v, nil
}

func optional(r *http.Request, key, def string) string {
	if v := r.Form.Get(key); v != "" {
		return v
	}
	return def
}

func (e badRequest) Error() string { return string(e) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		// Drop the connection without a response, as a dead peer would.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "server is down", http.StatusServiceUnavailable)
		return
	}
	key := r.Method + " " + r.URL.Path
	v, _ := s.counts.LoadOrStore(key, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)

	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "caused: "+err.Error()+";")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if s.opts.V1Disabled && strings.HasPrefix(path, "/nacos/v1/") {
		writeError(w, http.StatusGone, "Current API has been deprecated and is disabled by nacos.core.api.compatibility.client.enabled=false; use the Nacos 3 client API /nacos/v3/client/...")
		return
	}
	if path == "/nacos/v1/auth/login" || path == "/nacos/v1/auth/users/login" || path == "/nacos/v3/auth/user/login" {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' not supported")
			return
		}
		s.login(w, r)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if strings.HasPrefix(path, "/nacos/v3/client/ns/instance") {
		s.serveV3(w, r, path)
		return
	}
	var err error
	switch {
	case path == "/nacos/v1/ns/instance" && r.Method == http.MethodPost:
		err = s.register(w, r)
	case path == "/nacos/v1/ns/instance" && r.Method == http.MethodPut,
		path == "/nacos/v1/ns/instance/update" && r.Method == http.MethodPut:
		err = s.register(w, r)
	case path == "/nacos/v1/ns/instance" && r.Method == http.MethodDelete:
		err = s.deregister(w, r)
	case path == "/nacos/v1/ns/instance/beat" && r.Method == http.MethodPut:
		err = s.beat(w, r)
	case (path == "/nacos/v1/ns/instance/list" || path == "/nacos/v1/ns/instances") && r.Method == http.MethodGet:
		err = s.list(w, r)
	case path == "/nacos/v1/ns/instance" || path == "/nacos/v1/ns/instance/beat" || path == "/nacos/v1/ns/instance/list":
		writeError(w, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' not supported")
		return
	default:
		writeError(w, http.StatusNotFound, "No message available")
		return
	}
	if err != nil {
		if br, ok := err.(badRequest); ok {
			writeError(w, http.StatusBadRequest, "caused: "+string(br)+";")
			return
		}
		writeError(w, http.StatusInternalServerError, "caused: "+err.Error()+";")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Username == "" {
		// Auth disabled: Nacos still answers login, with a token nobody checks.
		writeJSON(w, map[string]any{"accessToken": "", "tokenTtl": int64(s.opts.TokenTTL / time.Second), "globalAdmin": true})
		return
	}
	if r.Form.Get("username") != s.opts.Username || r.Form.Get("password") != s.opts.Password {
		writeError(w, http.StatusForbidden, "unknown user!")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, map[string]any{
		"accessToken": tok,
		"tokenTtl":    int64(s.opts.TokenTTL / time.Second),
		"globalAdmin": true,
		"username":    s.opts.Username,
	})
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Username == "" {
		return true
	}
	tok := r.Form.Get("accessToken")
	if tok == "" {
		tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if tok == "" {
		writeError(w, http.StatusForbidden, "user not found!")
		return false
	}
	s.mu.Lock()
	exp, ok := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusForbidden, "token invalid!")
		return false
	case time.Now().After(exp):
		writeError(w, http.StatusForbidden, "token expired!")
		return false
	}
	return true
}

var (
	serviceNameRE = regexp.MustCompile(`^[0-9a-zA-Z@.:_-]+$`)
	// ParamCheckRule.clusterPatternString (Nacos 2.3+), at most 64 long.
	clusterNameRE = regexp.MustCompile(`^[0-9a-zA-Z_-]+$`)
)

// serviceParam reads and checks serviceName (grouped with groupName).
func serviceParam(r *http.Request) (string, error) {
	name, err := required(r, "serviceName")
	if err != nil {
		return "", err
	}
	grouped := groupedName(name, r.Form.Get("groupName"))
	parts := strings.Split(grouped, "@@")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", badRequest("Param 'serviceName' is illegal, it should be format as 'groupName@@serviceName'")
	}
	if !serviceNameRE.MatchString(grouped) {
		return "", badRequest("Param 'serviceName' is illegal, illegal characters should not appear in the param.")
	}
	return grouped, nil
}

func clusterParam(r *http.Request) (string, error) {
	c := r.Form.Get("clusterName")
	if c == "" {
		c = r.Form.Get("cluster")
	}
	if c == "" {
		c = DefaultCluster
	}
	if len(c) > maxClusterLength {
		return "", badRequest(fmt.Sprintf("Param 'cluster' is illegal, the param length should not exceed %d.", maxClusterLength))
	}
	if !clusterNameRE.MatchString(c) {
		return "", badRequest("Param 'cluster' is illegal, illegal characters should not appear in the param.")
	}
	return c, nil
}

func portParam(v string) (int, error) {
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(fmt.Sprintf("For input string: %q", v))
	}
	if p < 0 || p > 65535 {
		return 0, badRequest("Instance format invalid: port out of range")
	}
	return p, nil
}

func instanceID(ip string, port int, cluster, grouped string) string {
	return ip + "#" + strconv.Itoa(port) + "#" + cluster + "#" + grouped
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	grouped, err := serviceParam(r)
	if err != nil {
		return err
	}
	ip, err := required(r, "ip")
	if err != nil {
		return err
	}
	portStr, err := required(r, "port")
	if err != nil {
		return err
	}
	port, err := portParam(portStr)
	if err != nil {
		return err
	}
	cluster, err := clusterParam(r)
	if err != nil {
		return err
	}
	weight, err := strconv.ParseFloat(optional(r, "weight", "1"), 64)
	if err != nil || math.IsNaN(weight) {
		return badRequest("weight format invalid: " + r.Form.Get("weight"))
	}
	if weight < 0 || weight > MaxWeight {
		return badRequest("instance format invalid: The weights range from 0.0 to 10000.0")
	}
	enabledStr := r.Form.Get("enabled")
	if enabledStr == "" {
		enabledStr = optional(r, "enable", "true")
	}
	var metadata map[string]string
	if m := r.Form.Get("metadata"); m != "" {
		if err := json.Unmarshal([]byte(m), &metadata); err != nil {
			return badRequest("metadata format incorrect:" + m)
		}
	}
	if err := checkMetadata(metadata); err != nil {
		return err
	}
	in := &Instance{
		IP:          ip,
		Port:        port,
		Weight:      weight,
		Healthy:     parseBool(optional(r, "healthy", "true")),
		Enabled:     parseBool(enabledStr),
		Ephemeral:   parseBool(optional(r, "ephemeral", "true")),
		ClusterName: cluster,
		ServiceName: grouped,
		Metadata:    metadata,
		LastBeat:    time.Now(),
	}
	in.InstanceID = instanceID(ip, port, cluster, grouped)
	s.mu.Lock()
	s.putLocked(nsOrDefault(r.Form.Get("namespaceId")), in)
	s.mu.Unlock()
	writeOK(w)
	return nil
}

func parseBool(s string) bool { return strings.EqualFold(s, "true") }

func (s *Server) putLocked(ns string, in *Instance) {
	svcs := s.namespaces[ns]
	if svcs == nil {
		svcs = make(map[string]*service)
		s.namespaces[ns] = svcs
	}
	sv := svcs[in.ServiceName]
	if sv == nil {
		sv = &service{name: in.ServiceName, instances: make(map[string]*Instance)}
		svcs[in.ServiceName] = sv
	}
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	sv.instances[in.InstanceID] = in
	sv.recalculateChecksum()
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) error {
	grouped, err := serviceParam(r)
	if err != nil {
		return err
	}
	ip, err := required(r, "ip")
	if err != nil {
		return err
	}
	portStr, err := required(r, "port")
	if err != nil {
		return err
	}
	port, err := portParam(portStr)
	if err != nil {
		return err
	}
	cluster, err := clusterParam(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if sv := s.namespaces[nsOrDefault(r.Form.Get("namespaceId"))][grouped]; sv != nil {
		delete(sv.instances, instanceID(ip, port, cluster, grouped))
		sv.recalculateChecksum()
	}
	s.mu.Unlock()
	writeOK(w)
	return nil
}

// rsInfo is the beat JSON (com.alibaba.nacos.naming.healthcheck.RsInfo /
// the client's BeatInfo).
type rsInfo struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ServiceName string            `json:"serviceName"`
	Cluster     string            `json:"cluster"`
	Weight      float64           `json:"weight"`
	Metadata    map[string]string `json:"metadata"`
	Scheduled   bool              `json:"scheduled"`
	Period      int64             `json:"period"`
	Stopped     bool              `json:"stopped"`
	Ephemeral   *bool             `json:"ephemeral"`
}

func (s *Server) beat(w http.ResponseWriter, r *http.Request) error {
	var rb *rsInfo
	if b := r.Form.Get("beat"); strings.TrimSpace(b) != "" {
		rb = new(rsInfo)
		if err := json.Unmarshal([]byte(b), rb); err != nil {
			return badRequest("beat format invalid: " + err.Error())
		}
	}
	cluster := optional(r, "clusterName", DefaultCluster)
	ip := r.Form.Get("ip")
	port, err := portParam(optional(r, "port", "0"))
	if err != nil {
		return err
	}
	if rb != nil {
		if rb.Cluster != "" {
			cluster = rb.Cluster
		} else {
			rb.Cluster = cluster
		}
		ip, port = rb.IP, rb.Port
	}
	grouped, err := serviceParam(r)
	if err != nil {
		return err
	}
	ns := nsOrDefault(r.Form.Get("namespaceId"))
	result := map[string]any{
		"clientBeatInterval": s.opts.ClientBeatInterval.Milliseconds(),
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	id := instanceID(ip, port, cluster, grouped)
	var in *Instance
	if sv := s.namespaces[ns][grouped]; sv != nil {
		in = sv.instances[id]
	}
	if in == nil {
		if rb == nil {
			result["code"] = CodeResourceNotFound
			writeJSON(w, result)
			return nil
		}
		// Nacos re-creates an instance it does not know from a full beat.
		eph := rb.Ephemeral == nil || *rb.Ephemeral
		in = &Instance{
			IP: rb.IP, Port: rb.Port, Weight: rb.Weight, Healthy: true, Enabled: true,
			Ephemeral: eph, ClusterName: cluster, ServiceName: grouped,
			Metadata: rb.Metadata, LastBeat: now,
		}
		if in.Weight == 0 {
			in.Weight = 1
		}
		in.InstanceID = id
		s.putLocked(ns, in)
	}
	in.LastBeat = now
	if !in.Healthy {
		in.Healthy = true
		s.namespaces[ns][grouped].recalculateChecksum()
	}
	result["code"] = CodeOK
	result["lightBeatEnabled"] = !s.opts.LightBeatDisabled
	writeJSON(w, result)
	return nil
}

// expireLocked is Nacos's ClientBeatCheckTask: ephemeral instances without
// a recent beat turn unhealthy, then disappear.
func (s *Server) expireLocked(now time.Time) {
	for _, svcs := range s.namespaces {
		for _, sv := range svcs {
			changed := false
			for id, in := range sv.instances {
				if !in.Ephemeral {
					continue
				}
				idle := now.Sub(in.LastBeat)
				switch {
				case idle > s.opts.DeleteAfter:
					delete(sv.instances, id)
					changed = true
				case idle > s.opts.UnhealthyAfter && in.Healthy:
					in.Healthy = false
					changed = true
				}
			}
			if changed {
				sv.recalculateChecksum()
			}
		}
	}
}

func (sv *service) sortedInstances() []*Instance {
	list := make([]*Instance, 0, len(sv.instances))
	for _, in := range sv.instances {
		list = append(list, in)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].InstanceID < list[j].InstanceID })
	return list
}

// recalculateChecksum follows Service.recalculateChecksum: an MD5 over the
// sorted instance strings. Unlike Nacos it includes metadata, so that a
// metadata-only change also changes the checksum.
func (sv *service) recalculateChecksum() {
	h := md5.New()
	h.Write([]byte(sv.name))
	for _, in := range sv.sortedInstances() {
		md, _ := json.Marshal(in.Metadata)
		fmt.Fprintf(h, "%s:%d_%v_%v_%v_%s_%s,", in.IP, in.Port, in.Weight, in.Healthy, in.Enabled, in.ClusterName, md)
	}
	sv.checksum = hex.EncodeToString(h.Sum(nil))
}

type hostJSON struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Valid       bool              `json:"valid"`
	Marked      bool              `json:"marked"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Metadata    map[string]string `json:"metadata"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	grouped, err := serviceParam(r)
	if err != nil {
		return err
	}
	clusters := r.Form.Get("clusters")
	healthyOnly := parseBool(optional(r, "healthyOnly", "false"))
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	result := map[string]any{
		"name":            grouped,
		"dom":             grouped,
		"clusters":        clusters,
		"cacheMillis":     s.opts.CacheMillis,
		"lastRefTime":     now.UnixMilli(),
		"useSpecifiedURL": false,
		"env":             "",
		"metadata":        map[string]string{},
		"hosts":           []hostJSON{},
		"checksum":        "",
	}
	sv := s.namespaces[nsOrDefault(r.Form.Get("namespaceId"))][grouped]
	if sv == nil {
		writeJSON(w, result)
		return nil
	}
	result["checksum"] = sv.checksum
	want := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want[c] = true
		}
	}
	var healthy, unhealthy []*Instance
	total := 0
	for _, in := range sv.sortedInstances() {
		if len(want) > 0 && !want[in.ClusterName] {
			continue
		}
		total++
		if in.Healthy {
			healthy = append(healthy, in)
		} else {
			unhealthy = append(unhealthy, in)
		}
	}
	hosts := []hostJSON{}
	if total == 0 {
		result["hosts"] = hosts
		writeJSON(w, result)
		return nil
	}
	// The protect threshold, as ServiceUtil.selectInstancesWithHealthyProtection
	// applies it since Nacos 2.x (checked against 2.4.3): over the list
	// already filtered by healthyOnly. When too few of those are healthy,
	// all of them are returned as healthy rather than concentrate load.
	// With healthyOnly=true the filtered list is all healthy, so the
	// threshold never triggers and unhealthy instances are never listed.
	considered := total
	if healthyOnly {
		considered = len(healthy)
	}
	if considered > 0 && float64(len(healthy))/float64(considered) <= s.opts.ProtectThreshold {
		healthy = append(healthy, unhealthy...)
		unhealthy = nil
	}
	add := func(list []*Instance, ok bool) {
		for _, in := range list {
			// Disabled instances are never served.
			if !in.Enabled {
				continue
			}
			hosts = append(hosts, hostJSON{
				InstanceID: in.InstanceID, IP: in.IP, Port: in.Port, Weight: in.Weight,
				Healthy: ok, Valid: ok, Enabled: in.Enabled, Ephemeral: in.Ephemeral,
				ClusterName: in.ClusterName, ServiceName: in.ServiceName, Metadata: copyMap(in.Metadata),
			})
		}
	}
	add(healthy, true)
	if !healthyOnly {
		add(unhealthy, false)
	}
	result["hosts"] = hosts
	writeJSON(w, result)
	return nil
}

// Addr returns the double's host:port.
func (s *Server) Addr() string {
	return strings.TrimPrefix(s.URL, "http://")
}

// Limits Nacos enforces with a 400 (ParamCheckRule, NamingRequestUtil).
const (
	// MaxWeight is Constants.MAX_WEIGHT_VALUE.
	MaxWeight = 10000.0
	// MaxMetadataLength bounds the total length of metadata keys and
	// values, in UTF-16 units (Java's String.length()).
	MaxMetadataLength = 1024
	maxClusterLength  = 64
)

// checkMetadata is DefaultParamChecker.checkMetadataFormat.
func checkMetadata(md map[string]string) error {
	total := 0
	for k, v := range md {
		if strings.TrimSpace(k) != "" {
			total += utf16Len(k)
		}
		if strings.TrimSpace(v) != "" {
			total += utf16Len(v)
		}
	}
	if total > MaxMetadataLength {
		return badRequest(fmt.Sprintf("Param 'Metadata' is illegal, the param length should not exceed %d.", MaxMetadataLength))
	}
	return nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

// Nacos 3 client API result codes (com.alibaba.nacos.api.model.v2.ErrorCode).
const (
	CodeV3Success          = 0
	CodeV3ParameterMissing = 10000
	CodeV3InstanceNotFound = 21003
)

// result is com.alibaba.nacos.api.model.v2.Result.
type result struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

func writeResult(w http.ResponseWriter, status int, r result) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

// serveV3 is InstanceOpenApiController (Nacos 3.0.x, /nacos/v3/client/ns/instance):
// POST registers, or renews with heartBeat=true (code 21003 when the
// instance is unknown); DELETE deregisters; GET /list lists every enabled
// instance, healthy or not, with the protect threshold applied over them.
// Service and group travel apart (serviceName is not grouped).
func (s *Server) serveV3(w http.ResponseWriter, r *http.Request, path string) {
	fail := func(err error) {
		if br, ok := err.(badRequest); ok {
			writeResult(w, http.StatusBadRequest, result{Code: CodeV3ParameterMissing, Message: string(br)})
			return
		}
		writeResult(w, http.StatusInternalServerError, result{Code: 30000, Message: err.Error()})
	}
	// InstanceForm.validate: serviceName required and ungrouped.
	svc := r.Form.Get("serviceName")
	if strings.TrimSpace(svc) == "" {
		fail(badRequest("Required parameter 'serviceName' type String is not present"))
		return
	}
	if strings.Contains(svc, "@@") {
		fail(badRequest("Param 'serviceName' is illegal, illegal characters should not appear in the param."))
		return
	}
	group := optional(r, "groupName", DefaultGroup)
	r.Form.Set("serviceName", group+"@@"+svc)
	r.Form.Set("groupName", group)
	switch {
	case path == "/nacos/v3/client/ns/instance" && r.Method == http.MethodPost:
		if parseBool(r.Form.Get("heartBeat")) {
			if err := s.v3Beat(w, r); err != nil {
				fail(err)
			}
			return
		}
		rec := httptest.NewRecorder()
		if err := s.register(rec, r); err != nil {
			fail(err)
			return
		}
		writeResult(w, http.StatusOK, result{Code: CodeV3Success, Message: "success", Data: "ok"})
	case path == "/nacos/v3/client/ns/instance" && r.Method == http.MethodDelete:
		rec := httptest.NewRecorder()
		if err := s.deregister(rec, r); err != nil {
			fail(err)
			return
		}
		writeResult(w, http.StatusOK, result{Code: CodeV3Success, Message: "success", Data: "ok"})
	case path == "/nacos/v3/client/ns/instance/list" && r.Method == http.MethodGet:
		r.Form.Set("healthyOnly", "false")
		if c := r.Form.Get("clusterName"); c != "" {
			r.Form.Set("clusters", c)
		}
		rec := httptest.NewRecorder()
		if err := s.list(rec, r); err != nil {
			fail(err)
			return
		}
		var l struct {
			Hosts []hostJSON `json:"hosts"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &l)
		if l.Hosts == nil {
			l.Hosts = []hostJSON{}
		}
		writeResult(w, http.StatusOK, result{Code: CodeV3Success, Message: "success", Data: l.Hosts})
	default:
		writeResult(w, http.StatusMethodNotAllowed, result{Code: 405, Message: "Request method '" + r.Method + "' is not supported"})
	}
}

// v3Beat is InstanceOperator.handleBeat without a beat body.
func (s *Server) v3Beat(w http.ResponseWriter, r *http.Request) error {
	grouped, err := serviceParam(r)
	if err != nil {
		return err
	}
	ip, err := required(r, "ip")
	if err != nil {
		return err
	}
	port, err := portParam(optional(r, "port", "0"))
	if err != nil {
		return err
	}
	cluster, err := clusterParam(r)
	if err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	var in *Instance
	if sv := s.namespaces[nsOrDefault(r.Form.Get("namespaceId"))][grouped]; sv != nil {
		in = sv.instances[instanceID(ip, port, cluster, grouped)]
		if in != nil {
			in.LastBeat = now
			if !in.Healthy {
				in.Healthy = true
				sv.recalculateChecksum()
			}
		}
	}
	if in == nil {
		writeResult(w, http.StatusOK, result{Code: CodeV3InstanceNotFound, Message: "instance not exist"})
		return nil
	}
	writeResult(w, http.StatusOK, result{Code: CodeV3Success, Message: "success", Data: "ok"})
	return nil
}
