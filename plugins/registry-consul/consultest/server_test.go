package consultest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type answer struct {
	status int
	body   string
	index  uint64
	hdr    http.Header
}

func do(t *testing.T, s *Server, method, path, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b), hdr: resp.Header}
	if v := resp.Header.Get("X-Consul-Index"); v != "" {
		a.index, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
	}
	return a
}

func reg(name, id, ttl string) string {
	return `{"ID":"` + id + `","Name":"` + name + `","Address":"127.0.0.1","Port":8080,"Meta":{"a":"b"},
	"Weights":{"Passing":5,"Warning":1},"Check":{"TTL":"` + ttl + `","Status":"passing","DeregisterCriticalServiceAfter":"300ms"}}`
}

func entries(t *testing.T, body string) []serviceEntry {
	t.Helper()
	var out []serviceEntry
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	return out
}

func TestStatusCodes(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/v1/agent/service/register", `{"Port":1}`, 400, "Missing service name"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Address":"0.0.0.0"}`, 400, "Invalid service address"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Weights":{"Passing":0}}`, 400, "Invalid Weights: Passing must be greater than 0"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Meta":{"a.b":"c"}}`, 400, "Invalid Service Meta: Key contains invalid characters"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Meta":{"consul-x":"c"}}`, 400, "reserved for internal use"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Meta":{"k":"` + strings.Repeat("v", 513) + `"}}`, 400, "Value is too long (limit: 512 characters)"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Check":{"TTL":"1s","Status":"fine"}}`, 400, "Status for checks must"},
		{"PUT", "/v1/agent/service/register", `{"Name":`, 400, "Request decode failed"},
		{"GET", "/v1/agent/service/register", ``, 405, "method GET not allowed"},
		{"PUT", "/v1/agent/service/deregister/nope", ``, 404, `Unknown service ID "nope"`},
		{"PUT", "/v1/agent/check/update/nope", `{"Status":"passing"}`, 404, `Unknown check ID "nope"`},
		{"PUT", "/v1/agent/check/update/nope", `{"Status":"fine"}`, 400, "Invalid check status: 'fine'"},
		{"GET", "/v1/health/service/x?index=abc", ``, 400, "Invalid index"},
		{"GET", "/v1/health/service/x?wait=forever", ``, 400, "Invalid wait time"},
		{"GET", "/v1/health/service/x?passing=maybe", ``, 400, "Invalid value for ?passing"},
		{"GET", "/v1/nothing", ``, 404, ""},
	} {
		a := do(t, s, tc.method, tc.path, tc.body)
		assert.Equal(t, tc.status, a.status, "%s %s %s: %s", tc.method, tc.path, tc.body, a.body)
		assert.Contains(t, a.body, tc.want, "%s %s", tc.method, tc.path)
	}
	assert.Empty(t, s.Services(""))
}

func TestHealthShapeAndPassing(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	a := do(t, s, "GET", "/v1/health/service/web", "")
	require.Equal(t, 200, a.status)
	assert.Equal(t, "[]\n", a.body, "an unknown service is an empty list")
	assert.NotZero(t, a.index)
	assert.Equal(t, "true", a.hdr.Get("X-Consul-KnownLeader"))
	assert.Equal(t, "0", a.hdr.Get("X-Consul-LastContact"))

	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/register", reg("web", "web-1", "1h")).status)
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/register", `{"ID":"web-2","Name":"web","Port":81,"Check":{"TTL":"1h"}}`).status)
	all := entries(t, do(t, s, "GET", "/v1/health/service/web", "").body)
	require.Len(t, all, 2)
	e := all[0]
	assert.Equal(t, "web-1", e.Service.ID)
	assert.Equal(t, 5, e.Service.Weights.Passing)
	assert.Equal(t, map[string]string{"a": "b"}, e.Service.Meta)
	assert.Equal(t, []string{}, e.Service.Tags, "no tags render as [] like Consul")
	require.Len(t, e.Checks, 2)
	assert.Equal(t, "serfHealth", e.Checks[0].CheckID)
	assert.Equal(t, "service:web-1", e.Checks[1].CheckID)
	assert.Equal(t, "ttl", e.Checks[1].Type)
	// web-2's check started critical (no Status given), so ?passing hides it.
	passing := entries(t, do(t, s, "GET", "/v1/health/service/web?passing", "").body)
	require.Len(t, passing, 1)
	assert.Equal(t, "web-1", passing[0].Service.ID)
	require.Len(t, entries(t, do(t, s, "GET", "/v1/health/service/web?passing=false", "").body), 2)
}

func TestBlockingQuery(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/register", reg("api", "api-1", "1h")).status)
	first := do(t, s, "GET", "/v1/health/service/api", "")
	require.Equal(t, 200, first.status)

	// Nothing changes: the query holds until the wait (200ms + up to 1/16).
	start := time.Now()
	same := do(t, s, "GET", "/v1/health/service/api?wait=200ms&index="+strconv.FormatUint(first.index, 10), "")
	held := time.Since(start)
	assert.Equal(t, first.index, same.index)
	assert.GreaterOrEqual(t, held, 200*time.Millisecond)
	assert.Less(t, held, 2*time.Second)

	// A change to another service does not wake it; one to this service does.
	got := make(chan answer, 1)
	go func() {
		got <- do(t, s, "GET", "/v1/health/service/api?wait=5s&index="+strconv.FormatUint(first.index, 10), "")
	}()
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/register", reg("other", "other-1", "1h")).status)
	select {
	case a := <-got:
		t.Fatalf("woken by another service's change: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/deregister/api-1", "").status)
	select {
	case a := <-got:
		assert.Greater(t, a.index, first.index)
		assert.Empty(t, entries(t, a.body))
	case <-time.After(2 * time.Second):
		t.Fatal("blocking query not woken by the change")
	}
	// An index from the future (a restarted server) answers after the wait
	// with the current, lower index: the client must reset.
	a := do(t, s, "GET", "/v1/health/service/api?wait=50ms&index=999999", "")
	assert.Less(t, a.index, uint64(999999))
}

func TestTTLLifecycle(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/service/register", reg("ttl", "ttl-1", "400ms")).status)
	idx := do(t, s, "GET", "/v1/health/service/ttl", "").index
	// A renewal that keeps the status does not move the index.
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/check/update/service:ttl-1", `{"Status":"passing","Output":"ok"}`).status)
	assert.Equal(t, idx, do(t, s, "GET", "/v1/health/service/ttl", "").index)
	require.Equal(t, 200, do(t, s, "PUT", "/v1/agent/check/pass/service:ttl-1?note=x", "").status)
	// Without renewals the check turns critical ("TTL expired"), which
	// wakes a blocking query, then the service is reaped (300ms).
	a := do(t, s, "GET", "/v1/health/service/ttl?passing&wait=5s&index="+strconv.FormatUint(idx, 10), "")
	assert.Greater(t, a.index, idx)
	assert.Empty(t, entries(t, a.body))
	c, ok := s.CheckOf("service:ttl-1")
	require.True(t, ok)
	assert.Equal(t, "critical", c.Status)
	assert.Equal(t, "TTL expired", c.Output)
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Services("ttl")) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the reaper runs on its own timer
	}
	assert.Empty(t, s.Services("ttl"), "deregistered after DeregisterCriticalServiceAfter")
	assert.Equal(t, 404, do(t, s, "PUT", "/v1/agent/check/update/service:ttl-1", `{"Status":"passing"}`).status)
}

func TestACLAndFaults(t *testing.T) {
	s := NewServer(Options{Token: "tok"})
	defer s.Close()
	a := do(t, s, "GET", "/v1/health/service/x", "")
	assert.Equal(t, 403, a.status)
	assert.Contains(t, a.body, "Permission denied")
	a = do(t, s, "GET", "/v1/health/service/x", "", "X-Consul-Token", "bad")
	assert.Equal(t, 403, a.status)
	assert.Equal(t, "ACL not found", a.body)
	assert.Equal(t, 200, do(t, s, "GET", "/v1/health/service/x", "", "X-Consul-Token", "tok").status)
	assert.Equal(t, 200, do(t, s, "GET", "/v1/health/service/x?token=tok", "").status)
	s.SetFault(500, "No cluster leader")
	a = do(t, s, "GET", "/v1/health/service/x", "", "X-Consul-Token", "tok")
	assert.Equal(t, 500, a.status)
	assert.Equal(t, "No cluster leader", a.body)
}
