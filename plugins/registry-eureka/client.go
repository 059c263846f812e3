package eureka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// apiClient speaks Eureka's REST API to a list of servers, failing over
// between them.
type apiClient struct {
	servers []*url.URL // base URLs including the context path, e.g. http://h:8761/eureka
	http    *http.Client

	mu      sync.Mutex
	current int
}

// parseServer turns "host:port", "http://host:port" or
// "http://user:pass@host:port/ctx" into a base URL; the context path
// defaults to /eureka (Spring Cloud's; Netflix's own war uses /eureka/v2).
func parseServer(s string) (*url.URL, error) { return registrykit.ParseServerURL(s, "/eureka") }

// apiError is a non-2xx answer.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string {
	b := strings.TrimSpace(e.body)
	if len(b) > 200 {
		b = b[:200] + "…"
	}
	if b == "" {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, b)
}

func (e *apiError) code() spi.Code {
	switch {
	case e.status == http.StatusBadRequest:
		return spi.InvalidArgument
	case e.status == http.StatusUnauthorized:
		return spi.Unauthenticated
	case e.status == http.StatusForbidden:
		return spi.PermissionDenied
	case e.status == http.StatusNotFound:
		return spi.NotFound
	case e.status >= 500:
		return spi.Unavailable
	}
	return spi.Unknown
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return 0
}

// call sends one request and returns the body of a 2xx answer. It tries
// each server once, starting with the one that answered last; a transport
// error or a 5xx moves on, other answers are final.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var lastErr error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		data, err := c.send(ctx, c.servers[idx], method, path, query, payload)
		if err == nil {
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return data, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		if s := statusOf(err); s != 0 && s < 500 {
			break
		}
	}
	return nil, lastErr
}

func (c *apiClient) send(ctx context.Context, base *url.URL, method, path string, query url.Values, payload []byte) ([]byte, error) {
	u := *base
	u.Path = base.Path + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "kite-registry-eureka/"+Version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// Full fetches of a big registry are a few MB; the cap keeps a
	// misbehaving proxy from eating memory.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{status: resp.StatusCode, body: string(data)}
	}
	return data, nil
}

// wrap turns a call error into an spi error naming the operation.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *spi.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	code := spi.Unavailable
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.code()
	}
	return spi.WrapError(code, err, format+": %v", append(args, err)...)
}

// Eureka's JSON. Ports are {"$": 8080, "@enabled": "true"} (the number a
// string on old servers); an application's "instance" and the
// applications' "application" are lists, or a single object on servers
// using the legacy XStream JSON; empty metadata is {"@class": ...}.

type portJSON struct {
	Number  json.Number `json:"$"`
	Enabled string      `json:"@enabled"`
}

type leaseJSON struct {
	RenewalIntervalInSecs int `json:"renewalIntervalInSecs"`
	DurationInSecs        int `json:"durationInSecs"`
}

type instanceJSON struct {
	InstanceID         string            `json:"instanceId"`
	HostName           string            `json:"hostName"`
	App                string            `json:"app"`
	IPAddr             string            `json:"ipAddr"`
	Status             string            `json:"status"`
	Port               *portJSON         `json:"port,omitempty"`
	SecurePort         *portJSON         `json:"securePort,omitempty"`
	DataCenterInfo     map[string]string `json:"dataCenterInfo,omitempty"`
	LeaseInfo          *leaseJSON        `json:"leaseInfo,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	VIPAddress         string            `json:"vipAddress,omitempty"`
	SecureVIPAddress   string            `json:"secureVipAddress,omitempty"`
	LastDirtyTimestamp string            `json:"lastDirtyTimestamp,omitempty"`
	ActionType         string            `json:"actionType,omitempty"`
}

// oneOrMany decodes a JSON list, or a single object as a list of one.
type oneOrMany[T any] []T

func (o *oneOrMany[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var list []T
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*o = list
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*o = nil
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*o = []T{one}
	return nil
}

type applicationJSON struct {
	Name     string                  `json:"name"`
	Instance oneOrMany[instanceJSON] `json:"instance"`
}

type applicationsJSON struct {
	AppsHashcode string                     `json:"apps__hashcode"`
	Application  oneOrMany[applicationJSON] `json:"application"`
}

func (p *portJSON) number() (int, error) {
	if p == nil {
		return 0, errors.New("no port")
	}
	n, err := strconv.Atoi(p.Number.String())
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a port number", p.Number)
	}
	return n, nil
}
