package nacostest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// do sends params as the Nacos clients do: query for GET/DELETE, form
// body otherwise.
func do(t *testing.T, s *Server, method, path string, params url.Values) (int, string) {
	t.Helper()
	u := s.URL + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		u += "?" + params.Encode()
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func newServer(t *testing.T, o Options) *Server {
	s := NewServer(o)
	t.Cleanup(func() {
		s.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return s
}

func TestMissingParams(t *testing.T) {
	s := newServer(t, Options{})
	for _, c := range []struct {
		method, path string
		params       url.Values
		msg          string
	}{
		{"POST", "/nacos/v1/ns/instance", url.Values{"ip": {"1.2.3.4"}, "port": {"80"}}, "caused: Param 'serviceName' is required.;"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "port": {"80"}}, "caused: Param 'ip' is required.;"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}}, "caused: Param 'port' is required.;"},
		{"DELETE", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}}, "caused: Param 'port' is required.;"},
		{"GET", "/nacos/v1/ns/instance/list", url.Values{}, "caused: Param 'serviceName' is required.;"},
		{"PUT", "/nacos/v1/ns/instance/beat", url.Values{"ip": {"1.2.3.4"}, "port": {"80"}}, "caused: Param 'serviceName' is required.;"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}, "port": {"x"}}, `caused: For input string: "x";`},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}, "port": {"80"}, "weight": {"10001"}}, "weights range"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}, "port": {"80"}, "metadata": {"{"}}, "metadata format incorrect"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"s"}, "ip": {"1.2.3.4"}, "port": {"80"}, "clusterName": {"a.b"}}, "Param 'cluster' is illegal"},
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"@@s"}, "ip": {"1.2.3.4"}, "port": {"80"}}, "groupName@@serviceName"},
	} {
		code, body := do(t, s, c.method, c.path, c.params)
		assert.Equal(t, http.StatusBadRequest, code, "%s %s %v", c.method, c.path, c.params)
		assert.Contains(t, body, c.msg)
	}
	code, _ := do(t, s, "GET", "/nacos/v1/ns/nothing", nil)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = do(t, s, "PATCH", "/nacos/v1/ns/instance", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
}

type listJSON struct {
	Name        string `json:"name"`
	CacheMillis int    `json:"cacheMillis"`
	LastRefTime int64  `json:"lastRefTime"`
	Checksum    string `json:"checksum"`
	Clusters    string `json:"clusters"`
	Hosts       []struct {
		InstanceID  string            `json:"instanceId"`
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		Ephemeral   bool              `json:"ephemeral"`
		ClusterName string            `json:"clusterName"`
		ServiceName string            `json:"serviceName"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"hosts"`
}

func list(t *testing.T, s *Server, params url.Values) listJSON {
	t.Helper()
	code, body := do(t, s, "GET", "/nacos/v1/ns/instance/list", params)
	require.Equal(t, http.StatusOK, code, body)
	var l listJSON
	require.NoError(t, json.Unmarshal([]byte(body), &l), body)
	return l
}

func TestRegisterListDeregister(t *testing.T) {
	s := newServer(t, Options{CacheMillis: 3000})
	code, body := do(t, s, "POST", "/nacos/v1/ns/instance", url.Values{
		"serviceName": {"user"}, "groupName": {"G"}, "ip": {"10.0.0.1"}, "port": {"8080"},
		"weight": {"2.5"}, "metadata": {`{"version":"v1"}`}, "clusterName": {"east"},
	})
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	// Grouped and ungrouped names address the same service.
	l := list(t, s, url.Values{"serviceName": {"G@@user"}})
	assert.Equal(t, "G@@user", l.Name)
	assert.Equal(t, 3000, l.CacheMillis)
	assert.NotEmpty(t, l.Checksum)
	assert.InDelta(t, time.Now().UnixMilli(), l.LastRefTime, 5000)
	require.Len(t, l.Hosts, 1)
	h := l.Hosts[0]
	assert.Equal(t, "10.0.0.1#8080#east#G@@user", h.InstanceID)
	assert.Equal(t, 2.5, h.Weight)
	assert.True(t, h.Healthy && h.Enabled && h.Ephemeral)
	assert.Equal(t, "G@@user", h.ServiceName)
	assert.Equal(t, map[string]string{"version": "v1"}, h.Metadata)

	assert.Empty(t, list(t, s, url.Values{"serviceName": {"user"}, "groupName": {"G"}, "clusters": {"west"}}).Hosts)
	assert.Len(t, list(t, s, url.Values{"serviceName": {"user"}, "groupName": {"G"}, "clusters": {"east,west"}}).Hosts, 1)
	// Another namespace, another group: nothing.
	assert.Empty(t, list(t, s, url.Values{"serviceName": {"user"}, "groupName": {"G"}, "namespaceId": {"dev"}}).Hosts)
	assert.Empty(t, list(t, s, url.Values{"serviceName": {"user"}}).Hosts)

	// A disabled instance is never listed.
	sum := l.Checksum
	code, _ = do(t, s, "PUT", "/nacos/v1/ns/instance", url.Values{"serviceName": {"G@@user"}, "ip": {"10.0.0.1"}, "port": {"8080"}, "clusterName": {"east"}, "enabled": {"false"}})
	require.Equal(t, http.StatusOK, code)
	l = list(t, s, url.Values{"serviceName": {"G@@user"}})
	assert.Empty(t, l.Hosts)
	assert.NotEqual(t, sum, l.Checksum)

	code, body = do(t, s, "DELETE", "/nacos/v1/ns/instance", url.Values{"serviceName": {"G@@user"}, "ip": {"10.0.0.1"}, "port": {"8080"}, "clusterName": {"east"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)
	assert.Empty(t, s.Instances("", "G@@user"))
	// Deleting again, or an unknown service, is still ok.
	code, _ = do(t, s, "DELETE", "/nacos/v1/ns/instance", url.Values{"serviceName": {"nobody"}, "ip": {"10.0.0.1"}, "port": {"1"}})
	assert.Equal(t, http.StatusOK, code)
}

func TestBeatAndExpiry(t *testing.T) {
	s := newServer(t, Options{UnhealthyAfter: 150 * time.Millisecond, DeleteAfter: 300 * time.Millisecond, ClientBeatInterval: 40 * time.Millisecond})
	reg := url.Values{"serviceName": {"svc"}, "ip": {"10.0.0.2"}, "port": {"81"}}
	code, _ := do(t, s, "POST", "/nacos/v1/ns/instance", reg)
	require.Equal(t, http.StatusOK, code)

	var beat struct {
		ClientBeatInterval int64 `json:"clientBeatInterval"`
		Code               int   `json:"code"`
		LightBeatEnabled   bool  `json:"lightBeatEnabled"`
	}
	code, body := do(t, s, "PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"DEFAULT_GROUP@@svc"}, "ip": {"10.0.0.2"}, "port": {"81"}})
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &beat))
	assert.Equal(t, int64(40), beat.ClientBeatInterval)
	assert.Equal(t, CodeOK, beat.Code)
	assert.True(t, beat.LightBeatEnabled)

	// Without beats: unhealthy, then gone. The protect threshold (0) is
	// computed over the list healthyOnly leaves (Nacos 2.4): a single
	// unhealthy instance is not listed with healthyOnly=true, and listed as
	// healthy with healthyOnly=false (0 of 1 healthy <= 0).
	deadline := time.Now().Add(5 * time.Second)
	for s.Instances("", "svc")[0].Healthy {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(10 * time.Millisecond) // polling the double's clock-driven state
	}
	l := list(t, s, url.Values{"serviceName": {"svc"}, "healthyOnly": {"true"}})
	require.Empty(t, l.Hosts, "healthyOnly=true: the threshold never brings unhealthy instances back")
	l = list(t, s, url.Values{"serviceName": {"svc"}, "healthyOnly": {"false"}})
	require.Len(t, l.Hosts, 1, "healthyOnly=false, protect threshold 0: all instances unhealthy returns them all")
	assert.True(t, l.Hosts[0].Healthy)
	for len(s.Instances("", "svc")) > 0 {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(10 * time.Millisecond)
	}

	// A light beat for an unknown instance: 20404.
	code, body = do(t, s, "PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"svc"}, "ip": {"10.0.0.2"}, "port": {"81"}})
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &beat))
	assert.Equal(t, CodeResourceNotFound, beat.Code)
	// A full beat re-creates it.
	code, body = do(t, s, "PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"svc"},
		"beat": {`{"ip":"10.0.0.2","port":81,"serviceName":"DEFAULT_GROUP@@svc","weight":3,"metadata":{"a":"b"}}`}})
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &beat))
	assert.Equal(t, CodeOK, beat.Code)
	got := s.Instances("", "svc")
	require.Len(t, got, 1)
	assert.Equal(t, "10.0.0.2#81#DEFAULT#DEFAULT_GROUP@@svc", got[0].InstanceID)
	assert.Equal(t, 3.0, got[0].Weight)
	assert.Equal(t, map[string]string{"a": "b"}, got[0].Metadata)
}

func TestUnhealthyFilteredAboveThreshold(t *testing.T) {
	s := newServer(t, Options{UnhealthyAfter: 100 * time.Millisecond, DeleteAfter: time.Hour})
	for _, p := range []string{"1", "2"} {
		code, _ := do(t, s, "POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"two"}, "ip": {"10.0.0.3"}, "port": {p}})
		require.Equal(t, http.StatusOK, code)
	}
	// Keep port 2 alive with beats until port 1 has aged out of health.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := do(t, s, "PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"two"}, "ip": {"10.0.0.3"}, "port": {"2"}})
		require.Equal(t, http.StatusOK, code)
		if l := list(t, s, url.Values{"serviceName": {"two"}, "healthyOnly": {"true"}}); len(l.Hosts) == 1 {
			assert.Equal(t, 2, l.Hosts[0].Port)
			break
		}
		require.True(t, time.Now().Before(deadline))
		time.Sleep(20 * time.Millisecond)
	}
	// Port 2 beats right before the list, so 1 of 2 is healthy (above the
	// threshold, 0) however slow the machine.
	code, _ := do(t, s, "PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"two"}, "ip": {"10.0.0.3"}, "port": {"2"}})
	require.Equal(t, http.StatusOK, code)
	l := list(t, s, url.Values{"serviceName": {"two"}})
	require.Len(t, l.Hosts, 2, "healthyOnly=false lists the unhealthy one too")
	assert.True(t, l.Hosts[0].Healthy)
	assert.False(t, l.Hosts[1].Healthy)
}

func TestAuthFlow(t *testing.T) {
	s := newServer(t, Options{Username: "nacos", Password: "pw", TokenTTL: time.Hour})
	code, body := do(t, s, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"x"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "user not found!", body)
	code, body = do(t, s, "POST", "/nacos/v1/auth/login", url.Values{"username": {"nacos"}, "password": {"bad"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "unknown user!", body)
	code, body = do(t, s, "POST", "/nacos/v1/auth/login", url.Values{"username": {"nacos"}, "password": {"pw"}})
	require.Equal(t, http.StatusOK, code)
	var login struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int64  `json:"tokenTtl"`
		GlobalAdmin bool   `json:"globalAdmin"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &login))
	assert.NotEmpty(t, login.AccessToken)
	assert.Equal(t, int64(3600), login.TokenTTL)
	code, _ = do(t, s, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"x"}, "accessToken": {login.AccessToken}})
	assert.Equal(t, http.StatusOK, code)
	code, body = do(t, s, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"x"}, "accessToken": {"forged"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "token invalid!", body)
	s.ExpireTokens()
	code, body = do(t, s, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"x"}, "accessToken": {login.AccessToken}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "token expired!", body)
}

func TestDown(t *testing.T) {
	s := newServer(t, Options{})
	s.SetDown(true)
	_, err := http.Get(s.URL + "/nacos/v1/ns/instance/list?serviceName=x")
	assert.Error(t, err, "a down server drops connections")
	s.SetDown(false)
	code, _ := do(t, s, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"x"}})
	assert.Equal(t, http.StatusOK, code)
}
