package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// The Nacos 3 client API (InstanceOpenApiController, Nacos 3.0.x): one
// path for register (POST), heartbeat (POST with heartBeat=true) and
// deregister (DELETE), and /list. Parameters are those of v1 except that
// serviceName is not grouped; answers are a Result {code, message, data}.
const (
	pathV3Instance     = "/v3/client/ns/instance"
	pathV3List         = "/v3/client/ns/instance/list"
	pathV3Login        = "/v3/auth/user/login"
	codeV3InstanceGone = 21003 // ErrorCode.INSTANCE_NOT_FOUND
)

// Limits Nacos enforces with a 400 (ParamCheckRule, NamingRequestUtil,
// Constants.MAX_WEIGHT_VALUE; unchanged from 2.3 to 3.0), checked at
// Register so a bad instance fails before any request.
const (
	maxWeight            = 10000.0
	maxMetadataLength    = 1024 // keys + values, UTF-16 units
	maxClusterLength     = 64
	maxGroupLength       = 128
	maxServiceNameLength = 512
)

var (
	clusterRE = regexp.MustCompile(`^[0-9a-zA-Z_-]+$`)
	groupRE   = regexp.MustCompile(`^[a-zA-Z0-9_:.-]*$`)
)

// metadataLength is DefaultParamChecker.checkMetadataFormat's measure:
// the lengths of the non-blank keys and values, in UTF-16 units as
// Java's String.length() counts.
func metadataLength(md map[string]string) int {
	n := 0
	for k, v := range md {
		if strings.TrimSpace(k) != "" {
			n += utf16Len(k)
		}
		if strings.TrimSpace(v) != "" {
			n += utf16Len(v)
		}
	}
	return n
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

// fellBack reports whether err is the 410 Gone of a Nacos 3 whose v1
// client API is switched off, and switches this registry to the v3 API
// when the api setting allows it ("", automatic).
func (r *Registry) fellBack(err error) bool {
	var ae *apiError
	if r.apiVersion != "" || !errors.As(err, &ae) || ae.status != http.StatusGone {
		return false
	}
	r.v3.Store(true)
	return true
}

// v3Params turns v1 parameters into v3 ones: the service name ungrouped.
func (r *Registry) v3Params(params url.Values) url.Values {
	p := make(url.Values, len(params)+1)
	for k, v := range params {
		p[k] = v
	}
	p.Set("serviceName", strings.TrimPrefix(params.Get("serviceName"), r.group+"@@"))
	p.Set("groupName", r.group)
	return p
}

// v3Result is com.alibaba.nacos.api.model.v2.Result.
type v3Result struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (r *Registry) v3Call(ctx context.Context, method, path string, params url.Values) (v3Result, error) {
	body, err := r.api.call(ctx, method, path, params)
	if err != nil {
		return v3Result{}, err
	}
	var res v3Result
	if err := json.Unmarshal(body, &res); err != nil {
		return res, spi.WrapError(spi.Unavailable, err, "nacos registry: %s %s: the answer is not a Nacos result: %.200s", method, path, body)
	}
	return res, nil
}

// resultCall makes a v3 call whose result must have code 0.
func (r *Registry) resultCall(ctx context.Context, method, path string, params url.Values) error {
	res, err := r.v3Call(ctx, method, path, params)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return spi.Errorf(spi.Unknown, "nacos registry: %s %s: Nacos answered code %d: %s", method, path, res.Code, res.Message)
	}
	return nil
}

// registerCall registers through v1, or v3 when chosen or fallen back to.
func (r *Registry) registerCall(ctx context.Context, params url.Values) error {
	if !r.v3.Load() {
		_, err := r.api.call(ctx, http.MethodPost, "/v1/ns/instance", params)
		if !r.fellBack(err) {
			return err
		}
	}
	return r.resultCall(ctx, http.MethodPost, pathV3Instance, r.v3Params(params))
}

// beatV3 renews an instance through the v3 API: the register call with
// heartBeat=true; code 21003 (the server does not know it) registers it
// again.
func (r *Registry) beatV3(ctx context.Context, reg *registration) {
	params := url.Values{}
	for _, k := range []string{"serviceName", "groupName", "namespaceId", "ip", "port", "clusterName"} {
		if v := reg.params.Get(k); v != "" {
			params.Set(k, v)
		}
	}
	params = r.v3Params(params)
	params.Set("heartBeat", "true")
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.v3Call(cctx, http.MethodPost, pathV3Instance, params)
	if err == nil && res.Code == codeV3InstanceGone {
		_ = r.resultCall(cctx, http.MethodPost, pathV3Instance, r.v3Params(reg.params))
	}
}

// listV3 lists service through GET /v3/client/ns/instance/list, which
// returns every enabled instance, healthy or not (the protect threshold
// applied over all of them); unhealthy ones are dropped here.
func (r *Registry) listV3(ctx context.Context, service string) ([]spi.Instance, listResponse, error) {
	params := r.v3Params(r.baseParams(service))
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.v3Call(cctx, http.MethodGet, pathV3List, params)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, listResponse{}, spi.WrapError(spi.Unavailable, err, "nacos registry: listing %q: no answer within %v", service, r.timeout)
		}
		return nil, listResponse{}, wrap(err, "nacos registry: listing %q", service)
	}
	if res.Code != 0 {
		return nil, listResponse{}, spi.Errorf(spi.Unavailable, "nacos registry: listing %q: Nacos answered code %d: %s", service, res.Code, res.Message)
	}
	var hosts []hostJSON
	if len(res.Data) > 0 && string(res.Data) != "null" {
		if err := json.Unmarshal(res.Data, &hosts); err != nil {
			return nil, listResponse{}, spi.WrapError(spi.Unavailable, err, "nacos registry: listing %q: data is not a list of instances: %.200s", service, res.Data)
		}
	}
	list := make([]spi.Instance, 0, len(hosts))
	for _, h := range hosts {
		if !h.Healthy || (h.Enabled != nil && !*h.Enabled) || h.Weight <= 0 {
			continue
		}
		list = append(list, toInstance(service, h))
	}
	registrykit.SortByAddr(list)
	r.remember(service, list)
	return list, listResponse{}, nil
}
