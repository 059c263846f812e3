package eurekatest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func do(t *testing.T, s *Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func inst(app, id string, extra string) string {
	return `{"instance":{"instanceId":"` + id + `","hostName":"h","app":"` + app + `","ipAddr":"10.0.0.1","status":"UP",
	"port":{"$":8080,"@enabled":"true"},"leaseInfo":{"renewalIntervalInSecs":1,"durationInSecs":1},"lastDirtyTimestamp":"100"` + extra + `}}`
}

func TestResources(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/apps/WEB", `{"instance":{"hostName":"h","app":"WEB"}}`, 400, "Missing instanceId"},
		{"POST", "/apps/WEB", `{"instance":{"instanceId":"i","app":"WEB"}}`, 400, "Missing hostname"},
		{"POST", "/apps/WEB", `{"instance":{"instanceId":"i","hostName":"h"}}`, 400, "Missing appName"},
		{"POST", "/apps/WEB", inst("API", "i", ""), 400, "Mismatched appName, expecting WEB but was API"},
		{"POST", "/apps/WEB", `{"instance":`, 400, ""},
		{"GET", "/apps/WEB", "", 404, ""},
		{"PUT", "/apps/WEB/i", "", 404, ""},
		{"DELETE", "/apps/WEB/i", "", 404, ""},
		{"POST", "/apps/web", inst("web", "i", ""), 204, ""},
		{"PUT", "/apps/WEB/i?status=UP&lastDirtyTimestamp=100", "", 200, ""},
		{"PUT", "/apps/WEB/i?status=UP&lastDirtyTimestamp=200", "", 404, ""}, // the client's data is newer
		{"PUT", "/apps/WEB/i/status?value=NAPPING", "", 500, ""},
		{"PUT", "/apps/WEB/i/status?value=OUT_OF_SERVICE", "", 200, ""},
	} {
		code, body := do(t, s, tc.method, tc.path, tc.body)
		assert.Equal(t, tc.status, code, "%s %s: %s", tc.method, tc.path, body)
		assert.Contains(t, body, tc.want)
	}
	code, body := do(t, s, "GET", "/apps/WEB", "")
	require.Equal(t, 200, code)
	var app struct {
		Application struct {
			Name     string
			Instance []map[string]any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &app), body)
	assert.Equal(t, "WEB", app.Application.Name)
	require.Len(t, app.Application.Instance, 1)
	in := app.Application.Instance[0]
	assert.Equal(t, "OUT_OF_SERVICE", in["status"])
	assert.Equal(t, map[string]any{"$": 8080.0, "@enabled": "true"}, in["port"])
	assert.Equal(t, map[string]any{"@class": "java.util.Collections$EmptyMap"}, in["metadata"])

	// Full and delta carry the reconcile hash code.
	require.Equal(t, 204, first(do(t, s, "POST", "/apps/API", inst("API", "j", ""))))
	_, body = do(t, s, "GET", "/apps", "")
	assert.Contains(t, body, `"apps__hashcode":"OUT_OF_SERVICE_1_UP_1_"`)
	require.Equal(t, 200, first(do(t, s, "DELETE", "/apps/API/j", "")))
	_, body = do(t, s, "GET", "/apps/delta", "")
	assert.Contains(t, body, `"apps__hashcode":"OUT_OF_SERVICE_1_"`)
	assert.Contains(t, body, `"actionType":"DELETED"`)
	assert.Contains(t, body, `"actionType":"MODIFIED"`)
}

func first(code int, _ string) int { return code }

func TestEviction(t *testing.T) {
	s := NewServer(Options{EvictionInterval: 20 * time.Millisecond})
	defer s.Close()
	for _, id := range []string{"a", "b"} {
		require.Equal(t, 204, first(do(t, s, "POST", "/apps/EV", inst("EV", id, ""))))
	}
	start := time.Now()
	// a keeps renewing, b does not: b goes after 2 x durationInSecs (1s).
	for len(s.Instances("EV")) == 2 && time.Since(start) < 5*time.Second {
		require.Equal(t, 200, first(do(t, s, "PUT", "/apps/EV/a", "")))
		time.Sleep(50 * time.Millisecond) // renewal period of the test client
	}
	took := time.Since(start)
	got := s.Instances("EV")
	require.Len(t, got, 1)
	assert.Equal(t, "a", got[0].InstanceID)
	assert.Greater(t, took, 1900*time.Millisecond)
	assert.Less(t, took, 3*time.Second)
}

func TestSelfPreservation(t *testing.T) {
	s := NewServer(Options{EvictionInterval: 50 * time.Millisecond, SelfPreservation: true})
	defer s.Close()
	require.Equal(t, 204, first(do(t, s, "POST", "/apps/SP", inst("SP", "a", ""))))
	time.Sleep(2500 * time.Millisecond) // no renewals at all, past 2 x durationInSecs
	assert.Len(t, s.Instances("SP"), 1, "too few renewals: eviction is suspended")
}
