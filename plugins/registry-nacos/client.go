package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// apiClient speaks the Nacos Open API over HTTP to a list of servers,
// failing over between them and logging in when credentials are set.
type apiClient struct {
	servers  []*url.URL // base URLs including the context path, e.g. http://h:8848/nacos
	http     *http.Client
	username string
	password string

	mu      sync.Mutex
	current int // index of the server that answered last

	authMu    sync.Mutex
	token     string
	refreshAt time.Time
}

// parseServer turns "host:port", "http://host:port" or
// "http://host:port/ctx" into a base URL; the context path defaults to
// /nacos.
func parseServer(s string) (*url.URL, error) { return registrykit.ParseServerURL(s, "/nacos") }

// apiError is a non-2xx answer from Nacos.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, strings.TrimSpace(e.body))
}

// code maps a Nacos answer to a Kite code.
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
	case e.status == http.StatusGone:
		return spi.FailedPrecondition // the v1 API is switched off: api = "v3"
	case e.status >= 500:
		return spi.Unavailable
	}
	return spi.Unknown
}

// retryable reports whether another server may answer better.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status >= 500
	}
	return true // transport error
}

// call sends one API request and returns the body of a 2xx answer. params
// travel in the query for GET and DELETE and as a form body otherwise,
// as the Nacos clients do. It tries each server once, starting with the
// one that answered last, and logs in again once if a token was refused.
func (c *apiClient) call(ctx context.Context, method, path string, params url.Values) ([]byte, error) {
	body, err := c.callServers(ctx, method, path, params, false)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusForbidden && c.username != "" && ctx.Err() == nil {
		// The token may have expired early or the server restarted: log in
		// again and retry once.
		body, err = c.callServers(ctx, method, path, params, true)
	}
	return body, err
}

func (c *apiClient) callServers(ctx context.Context, method, path string, params url.Values, relogin bool) ([]byte, error) {
	if c.username != "" {
		if err := c.ensureToken(ctx, relogin); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var lastErr error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		body, err := c.send(ctx, c.servers[idx], method, path, params, true)
		if err == nil {
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return body, nil
		}
		lastErr = err
		if ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	return nil, lastErr
}

// send performs one HTTP request against base.
func (c *apiClient) send(ctx context.Context, base *url.URL, method, path string, params url.Values, withToken bool) ([]byte, error) {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	if withToken && c.username != "" {
		c.authMu.Lock()
		q.Set("accessToken", c.token)
		c.authMu.Unlock()
	}
	u := *base
	u.Path = base.Path + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		u.RawQuery = q.Encode()
	} else {
		body = strings.NewReader(q.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "kite-registry-nacos/"+Version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// Answers are small; a cap keeps a misbehaving proxy from eating memory.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{status: resp.StatusCode, body: string(data)}
	}
	return data, nil
}

// ensureToken logs in when there is no token or it is due for refresh
// (after 90% of its TTL, as the Nacos SDK does), or when force is set.
func (c *apiClient) ensureToken(ctx context.Context, force bool) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if !force && c.token != "" && time.Now().Before(c.refreshAt) {
		return nil
	}
	params := url.Values{"username": {c.username}, "password": {c.password}}
	var lastErr error
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	for i := range c.servers {
		base := c.servers[(start+i)%len(c.servers)]
		body, err := c.send(ctx, base, http.MethodPost, "/v1/auth/login", params, false)
		var gone *apiError
		if errors.As(err, &gone) && gone.status == http.StatusGone {
			// A Nacos 3 with its v1 API off logs in on the v3 path.
			body, err = c.send(ctx, base, http.MethodPost, pathV3Login, params, false)
		}
		if err != nil {
			lastErr = err
			if ctx.Err() != nil || !retryable(err) {
				break
			}
			continue
		}
		var resp struct {
			AccessToken string `json:"accessToken"`
			TokenTTL    int64  `json:"tokenTtl"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return spi.WrapError(spi.Unavailable, err, "nacos registry: login answer from %s is not JSON: %.200s", base.Host, body)
		}
		ttl := time.Duration(resp.TokenTTL) * time.Second
		if ttl <= 0 {
			ttl = 18000 * time.Second
		}
		c.token = resp.AccessToken
		c.refreshAt = time.Now().Add(ttl - ttl/10)
		return nil
	}
	var ae *apiError
	if errors.As(lastErr, &ae) && ae.status == http.StatusForbidden {
		return spi.WrapError(spi.Unauthenticated, lastErr, "nacos registry: login as %q refused: %v (check username/password)", c.username, lastErr)
	}
	return spi.WrapError(spi.Unavailable, lastErr, "nacos registry: login failed on every server: %v", lastErr)
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
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	code := spi.Unavailable
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.code()
	}
	return spi.WrapError(code, err, format+": %v", append(args, err)...)
}
