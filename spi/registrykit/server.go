package registrykit

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseServerURL turns a registry server address as written in kite.hcl
// — "host:port", "http://host:port" or "https://user:pass@host:port/ctx"
// — into a base URL for an HTTP registry API: http is assumed when no
// scheme is given, only http and https are accepted, a trailing slash is
// dropped, an empty path becomes defaultPath (e.g. "/nacos", "/eureka"),
// and query and fragment are cleared.
func ParseServerURL(s, defaultPath string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty server address")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if u.Path == "" {
		u.Path = defaultPath
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}
