package jwtfilter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/kiterpc/kite/spi"
)

// Name is the filter's catalog name.
const Name = "jwt"

// MetaClaims is the metadata key under which the filter passes the
// verified claims (as JSON) to the rest of the chain when configured
// with ClaimsMetadata. The server side removes any value a caller sent
// under it before anything else, so it only ever holds what this filter
// verified.
const MetaClaims = "kite-jwt-claims"

// MaxTokenSize bounds the token a server accepts, before any decoding.
const MaxTokenSize = 16 << 10

// Claims are the verified claims of a call's token.
type Claims struct {
	Subject   string
	Issuer    string
	Audience  []string
	ID        string
	ExpiresAt time.Time // zero when the token has no exp
	NotBefore time.Time
	IssuedAt  time.Time
	// Scopes come from "scope" (a space-separated string, RFC 8693) or
	// "scp" (a list or a string).
	Scopes []string
	// Raw holds every claim as decoded from JSON (numbers as float64).
	Raw map[string]any
}

// HasScope reports whether the token grants scope.
func (c *Claims) HasScope(scope string) bool {
	for _, s := range c.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

type claimsKey struct{}

// FromContext returns the claims the filter verified for the call whose
// handler context this is (compiled-in filter).
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// WithClaims returns ctx carrying c, as the filter hands it to the
// handler (useful when testing handlers).
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromMetadata returns the claims a filter configured with
// claims_metadata put in md (MetaClaims): the way a handler reaches them
// when the filter runs out of process, where context values cannot cross.
func FromMetadata(md *spi.Metadata) (*Claims, bool) {
	raw, ok := md.Lookup(MetaClaims)
	if !ok {
		return nil, false
	}
	var m map[string]any
	if json.Unmarshal([]byte(raw), &m) != nil {
		return nil, false
	}
	return claimsOf(jwt.MapClaims(m)), true
}

// Options configure a Filter built in code.
type Options struct {
	// HMACKeyFile holds a secret for HS256/384/512 (at least 32 bytes).
	HMACKeyFile string
	// PublicKeyFiles are PEM files of public keys or certificates: RSA
	// (RS*, PS*, at least 2048 bits), EC P-256/384/521 (ES256/384/512),
	// Ed25519 (EdDSA).
	PublicKeyFiles []string
	// JWKSFile is a JSON Web Key Set file. It is re-read when it changes
	// (checked at most every JWKSRefresh, and at once, at most every
	// second, when a token names a key id it lacks); a new version that
	// does not parse is reported and the keys in use are kept.
	JWKSFile    string
	JWKSRefresh time.Duration // 5s when zero
	// Algorithms limits the algorithms accepted; empty means every
	// algorithm some configured key can verify. "none" is never accepted.
	Algorithms []string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must contain one of the token's aud values.
	Audience []string
	// Leeway is the clock skew allowed on exp, nbf and iat; 30s when
	// zero, none when negative.
	Leeway time.Duration
	// AllowNoExpiry accepts tokens without exp (by default they are
	// refused: a token that never expires cannot be revoked by time).
	AllowNoExpiry bool
	// PublicMethods need no token: "Svc.Method", "Svc.*" or "*".
	PublicMethods []string
	// Scopes maps a method pattern to scopes the token must all grant;
	// Claims maps a pattern to claims it must carry, "name" (present) or
	// "name=value" (equal to value, or a list containing it). The most
	// specific pattern wins: exact, then the longest "Svc.*", then "*".
	Scopes map[string][]string
	Claims map[string][]string
	// ClaimsMetadata passes the verified claims down the chain in
	// MetaClaims metadata too (for handlers of a filter served out of
	// process; see FromMetadata).
	ClaimsMetadata bool
	// TokenFile is the client side: a file holding the token to send as
	// "authorization: Bearer <token>", re-read when it changes.
	TokenFile string
	// Logger reports JWKS reloads; hclog.Default() when nil. Tokens are
	// never logged.
	Logger hclog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Filter verifies JWTs on the server side and sends one on the client
// side. Build it with NewFilter.
type Filter struct {
	o       Options
	static  []*key
	algs    map[string]bool
	algList []string
	parser  *jwt.Parser
	public  rules[struct{}]
	scopes  rules[[]string]
	claims  rules[[]claimRule]
	log     hclog.Logger
	now     func() time.Time

	jwks  *watched[[]*key]
	token *watched[string]
}

type claimRule struct {
	name, value string
	valued      bool
}

// NewFilter builds a filter from o. Every key file and the JWKS must load.
func NewFilter(o Options) (*Filter, error) {
	f := &Filter{o: o, log: o.Logger, now: o.Now}
	if f.log == nil {
		f.log = hclog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	if o.HMACKeyFile != "" {
		k, err := loadHMACKey(o.HMACKeyFile)
		if err != nil {
			return nil, fmt.Errorf("hmac_key_file: %w", err)
		}
		f.static = append(f.static, k)
	}
	for _, p := range o.PublicKeyFiles {
		ks, err := loadPEMKeys(p)
		if err != nil {
			return nil, fmt.Errorf("public_key_files: %w", err)
		}
		f.static = append(f.static, ks...)
	}
	verifier := len(f.static) > 0 || o.JWKSFile != ""
	if o.JWKSFile != "" {
		every := o.JWKSRefresh
		if every <= 0 {
			every = 5 * time.Second
		}
		w, err := newWatched(o.JWKSFile, every, f.now, func(data []byte) ([]*key, error) { return parseJWKS(data, o.JWKSFile) })
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		f.jwks = w
	}
	if o.TokenFile != "" {
		w, err := newWatched(o.TokenFile, time.Second, f.now, func(data []byte) (string, error) {
			tok := strings.TrimSpace(string(data))
			if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
				return "", errors.New("the file does not hold one token")
			}
			return "Bearer " + tok, nil
		})
		if err != nil {
			return nil, fmt.Errorf("token_file: %w", err)
		}
		f.token = w
	}
	if !verifier && f.token == nil {
		return nil, errors.New("set hmac_key_file, public_key_files or jwks_file (server side), or token_file (client side)")
	}

	// Algorithms: what the keys can verify, narrowed by the setting.
	f.algs = map[string]bool{}
	if len(o.Algorithms) > 0 {
		for _, a := range o.Algorithms {
			if !allAlgorithms[a] {
				return nil, fmt.Errorf("algorithms: %q is not a JWS algorithm this filter verifies (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)", a)
			}
			f.algs[a] = true
		}
	} else {
		for _, k := range f.static {
			for _, a := range k.algs {
				f.algs[a] = true
			}
		}
		if f.jwks != nil {
			// The set may change: any asymmetric algorithm may appear.
			// HMAC only when a symmetric key is configured or in the set
			// now (a JWKS is usually public; it should not grow secrets).
			for a := range allAlgorithms {
				if !strings.HasPrefix(a, "HS") {
					f.algs[a] = true
				}
			}
			for _, k := range f.jwks.get() {
				for _, a := range k.algs {
					f.algs[a] = true
				}
			}
		}
	}
	for a := range f.algs {
		f.algList = append(f.algList, a)
	}
	sort.Strings(f.algList)

	leeway := o.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	} else if leeway < 0 {
		leeway = 0
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(f.algList), jwt.WithLeeway(leeway), jwt.WithTimeFunc(f.now), jwt.WithIssuedAt(),
	}
	if !o.AllowNoExpiry {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if len(o.Audience) > 0 {
		popts = append(popts, jwt.WithAudience(o.Audience...))
	}
	f.parser = jwt.NewParser(popts...)

	var err error
	pub := make(map[string]struct{}, len(o.PublicMethods))
	for _, m := range o.PublicMethods {
		pub[m] = struct{}{}
	}
	if f.public, err = newRules(pub); err != nil {
		return nil, fmt.Errorf("public_methods: %w", err)
	}
	if f.scopes, err = newRules(o.Scopes); err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	cr := make(map[string][]claimRule, len(o.Claims))
	for pat, list := range o.Claims {
		for _, c := range list {
			name, value, valued := strings.Cut(c, "=")
			if name = strings.TrimSpace(name); name == "" {
				return nil, fmt.Errorf("claims[%q]: %q has no claim name", pat, c)
			}
			cr[pat] = append(cr[pat], claimRule{name: name, value: value, valued: valued})
		}
	}
	if f.claims, err = newRules(cr); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return f, nil
}

var _ spi.MetadataFilter = (*Filter)(nil)

// MetadataOnly marks the filter as deciding from metadata alone
// (spi.MetadataFilter): a server runs it before decoding the request body,
// so a call without a valid token costs no decoding.
func (*Filter) MetadataOnly() {}

// BeforeOnly implements spi.BeforeOnlyFilter: the filter acts before
// next (adds or checks the token) and returns next's result untouched,
// so served out of process it costs one exchange per call, not two.
func (*Filter) BeforeOnly() {}

// Reload re-reads the JWKS file (and the client's token file) now,
// whatever their modification times; on error the keys in use are kept.
func (f *Filter) Reload() error {
	var errs []error
	if f.jwks != nil {
		errs = append(errs, f.jwks.reload())
	}
	if f.token != nil {
		errs = append(errs, f.token.reload())
	}
	return errors.Join(errs...)
}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if call.Side == spi.ClientSide {
			if f.token != nil {
				if call.Meta == nil {
					call.Meta = &spi.Metadata{}
				}
				if _, set := call.Meta.Lookup(spi.MetaAuthorization); !set {
					f.refresh(f.token)
					call.Meta.Set(spi.MetaAuthorization, f.token.get())
				}
			}
			return next(ctx, call)
		}
		if call.Meta == nil {
			call.Meta = &spi.Metadata{}
		}
		// Claims in metadata are only ever the ones verified here.
		call.Meta.Delete(MetaClaims)
		if _, ok := f.public.match(call.Method); ok {
			return next(ctx, call)
		}
		claims, err := f.Verify(call.Meta.Get(spi.MetaAuthorization))
		if err != nil {
			return err
		}
		if err := f.authorize(call.Method, claims); err != nil {
			return err
		}
		if f.o.ClaimsMetadata {
			if b, err := json.Marshal(claims.Raw); err == nil {
				call.Meta.Set(MetaClaims, string(b))
			}
		}
		return next(WithClaims(ctx, claims), call)
	}
}

// Verify checks an authorization value ("Bearer <jwt>") and returns the
// token's claims, or an Unauthenticated *spi.Error saying why. The
// message never contains the token.
func (f *Filter) Verify(authorization string) (*Claims, error) {
	if len(f.static) == 0 && f.jwks == nil {
		return nil, spi.Errorf(spi.Unauthenticated, "this server's jwt filter has no verification keys configured")
	}
	if authorization == "" {
		return nil, spi.Errorf(spi.Unauthenticated, "missing bearer token in %q metadata", spi.MetaAuthorization)
	}
	raw, ok := bearer(authorization)
	if !ok {
		return nil, spi.Errorf(spi.Unauthenticated, "malformed %q metadata: want \"Bearer <token>\"", spi.MetaAuthorization)
	}
	if len(raw) > MaxTokenSize {
		return nil, spi.Errorf(spi.Unauthenticated, "token of %d bytes exceeds %d", len(raw), MaxTokenSize)
	}
	if alg, ok := headerAlg(raw); ok && !f.algs[alg] {
		// The library reports this as a bad signature; say what it is.
		// Only algorithm names are quoted, never other token bytes.
		if alg != "none" && !allAlgorithms[alg] {
			alg = "this"
		}
		return nil, spi.Errorf(spi.Unauthenticated, "invalid token: signing algorithm %q not accepted", alg)
	}
	var mc jwt.MapClaims
	tok, err := f.parser.ParseWithClaims(raw, &mc, f.keyFor)
	if err != nil || !tok.Valid {
		return nil, spi.WrapError(spi.Unauthenticated, err, "invalid token: %s", reason(err))
	}
	return claimsOf(mc), nil
}

// headerAlg reads the alg of a token's (unverified) header.
func headerAlg(raw string) (string, bool) {
	head, _, ok := strings.Cut(raw, ".")
	if !ok || len(head) > 4096 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return "", false
	}
	return h.Alg, true
}

// reason is a fixed description of a verification failure: the
// library's own messages may quote pieces of the token.
func reason(err error) string {
	var ke *keyError
	switch {
	case err == nil:
		return "not valid"
	case errors.As(err, &ke):
		return ke.msg
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed (not three base64url segments of JSON)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature does not verify"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing (exp, or iss/aud when configured)"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signing algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidClaims), errors.Is(err, jwt.ErrInvalidType):
		return "claims of the wrong type"
	}
	return "rejected"
}

// keyError is a key-selection failure with a message safe to return.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// keyFor picks the verification keys for a parsed (not yet verified)
// token: by kid in the JWKS, else every configured key of the token's
// algorithm. It is the jwt.Keyfunc.
func (f *Filter) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set []*key
	if f.jwks != nil {
		f.refresh(f.jwks)
		set = f.jwks.get()
		if kid != "" && findKid(set, kid) == nil && f.jwks.refreshSoon() {
			set = f.jwks.get()
		}
	}
	if kid != "" {
		if k := findKid(set, kid); k != nil {
			if !k.allows(alg) {
				return nil, &keyError{fmt.Sprintf("key %q does not verify %s", kid, alg)}
			}
			return k.pub, nil
		}
	}
	var keys jwt.VerificationKeySet
	for _, group := range [][]*key{f.static, set} {
		for _, k := range group {
			if k.allows(alg) && (kid == "" || k.kid == "") {
				keys.Keys = append(keys.Keys, k.pub)
			}
		}
	}
	if len(keys.Keys) == 0 {
		if kid != "" {
			return nil, &keyError{fmt.Sprintf("no key with id %q for %s", kid, alg)}
		}
		return nil, &keyError{"no key for " + alg}
	}
	return keys, nil
}

func findKid(set []*key, kid string) *key {
	for _, k := range set {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// refresh re-reads w's file if it changed and is due a check, keeping
// the current value (and logging) when the new one does not load.
func (f *Filter) refresh(w interface{ check() (bool, error) }) {
	if changed, err := w.check(); err != nil {
		f.log.Warn("jwt filter: keeping the keys in use; the changed file does not load", "error", err)
	} else if changed {
		f.log.Info("jwt filter: reloaded a changed key or token file")
	}
}

// authorize applies the method's scope and claim rules: a valid token
// without what the method needs is PermissionDenied.
func (f *Filter) authorize(method string, c *Claims) error {
	if need, ok := f.scopes.match(method); ok {
		for _, s := range need {
			if !c.HasScope(s) {
				return spi.Errorf(spi.PermissionDenied, "%s needs scope %q", method, s)
			}
		}
	}
	if rules, ok := f.claims.match(method); ok {
		for _, r := range rules {
			v, present := c.Raw[r.name]
			if !present {
				return spi.Errorf(spi.PermissionDenied, "%s needs claim %q", method, r.name)
			}
			if r.valued && !claimHas(v, r.value) {
				return spi.Errorf(spi.PermissionDenied, "%s needs claim %q = %q", method, r.name, r.value)
			}
		}
	}
	return nil
}

func claimHas(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case []any:
		for _, e := range x {
			if claimHas(e, want) {
				return true
			}
		}
	case bool:
		return strconv.FormatBool(x) == want
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64) == want
	}
	return false
}

func claimsOf(mc jwt.MapClaims) *Claims {
	c := &Claims{Raw: map[string]any(mc)}
	c.Subject, _ = mc.GetSubject()
	c.Issuer, _ = mc.GetIssuer()
	if aud, err := mc.GetAudience(); err == nil {
		c.Audience = aud
	}
	if t, err := mc.GetExpirationTime(); err == nil && t != nil {
		c.ExpiresAt = t.Time
	}
	if t, err := mc.GetNotBefore(); err == nil && t != nil {
		c.NotBefore = t.Time
	}
	if t, err := mc.GetIssuedAt(); err == nil && t != nil {
		c.IssuedAt = t.Time
	}
	c.ID, _ = mc["jti"].(string)
	if s, ok := mc["scope"].(string); ok {
		c.Scopes = strings.Fields(s)
	}
	switch s := mc["scp"].(type) {
	case string:
		c.Scopes = append(c.Scopes, strings.Fields(s)...)
	case []any:
		for _, e := range s {
			if str, ok := e.(string); ok {
				c.Scopes = append(c.Scopes, str)
			}
		}
	}
	return c
}

// bearer extracts the token of "Bearer <token>"; the scheme is
// case-insensitive (RFC 6750 via RFC 9110).
func bearer(v string) (string, bool) {
	const scheme = "bearer "
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	return tok, tok != ""
}

// watched is a file-backed value re-read when the file changes: its
// modification time, size or inode differ from the last read. check
// stats the file at most once per interval.
type watched[T any] struct {
	path     string
	every    time.Duration
	now      func() time.Time
	parse    func([]byte) (T, error)
	val      atomic.Pointer[T]
	next     atomic.Int64 // unix ns of the next due check
	soonNext atomic.Int64 // unix ns before which refreshSoon does nothing

	mu   sync.Mutex
	stat os.FileInfo
	bad  os.FileInfo // the last version that failed to parse (reported once)
	gone bool        // the file could not be stat'ed (reported once)
}

func newWatched[T any](path string, every time.Duration, now func() time.Time, parse func([]byte) (T, error)) (*watched[T], error) {
	w := &watched[T]{path: path, every: every, now: now, parse: parse}
	if err := w.reload(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *watched[T]) get() T { return *w.val.Load() }

// reload reads and parses the file now.
func (w *watched[T]) reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.readLocked()
	return err
}

func (w *watched[T]) readLocked() (bool, error) {
	st, err := os.Stat(w.path)
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return false, err
	}
	v, err := w.parse(data)
	if err != nil {
		w.bad = st
		return false, err
	}
	w.stat, w.bad = st, nil
	w.val.Store(&v)
	return true, nil
}

// check re-reads the file when due and changed. An error is returned
// once per bad version of the file.
func (w *watched[T]) check() (bool, error) {
	now := w.now().UnixNano()
	if now < w.next.Load() {
		return false, nil
	}
	return w.checkNow(now)
}

func (w *watched[T]) checkNow(now int64) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next.Store(now + int64(w.every))
	st, err := os.Stat(w.path)
	if err != nil {
		if w.gone {
			return false, nil
		}
		w.gone = true
		return false, err
	}
	w.gone = false
	if same(st, w.stat) || same(st, w.bad) {
		return false, nil
	}
	return w.readLocked()
}

// refreshSoon re-reads a changed file now (a token named a key id the
// set lacks, as after a key rotation), at most once a second.
func (w *watched[T]) refreshSoon() bool {
	now := w.now().UnixNano()
	if now < w.soonNext.Load() {
		return false
	}
	w.soonNext.Store(now + int64(time.Second))
	changed, _ := w.checkNow(now)
	return changed
}

func same(a, b os.FileInfo) bool {
	return b != nil && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size() && os.SameFile(a, b)
}

// rules matches methods against patterns: "Svc.Method", "Svc.*" (every
// method of Svc), "*" (everything). The most specific pattern wins.
type rules[V any] struct {
	exact    map[string]V
	prefixes []prefixRule[V] // longest first
	any      *V
}

type prefixRule[V any] struct {
	prefix string // "Svc."
	v      V
}

func newRules[V any](m map[string]V) (rules[V], error) {
	r := rules[V]{exact: map[string]V{}}
	for pat, v := range m {
		switch {
		case pat == "*":
			r.any = &v
		case strings.HasSuffix(pat, ".*") && len(pat) > 2 && !strings.Contains(pat[:len(pat)-2], "*"):
			r.prefixes = append(r.prefixes, prefixRule[V]{prefix: pat[:len(pat)-1], v: v})
		case pat == "" || strings.Contains(pat, "*"):
			return r, fmt.Errorf("pattern %q: use \"Svc.Method\", \"Svc.*\" or \"*\"", pat)
		default:
			r.exact[pat] = v
		}
	}
	sort.Slice(r.prefixes, func(i, j int) bool { return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix) })
	return r, nil
}

func (r *rules[V]) match(method string) (V, bool) {
	if v, ok := r.exact[method]; ok {
		return v, true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(method, p.prefix) {
			return p.v, true
		}
	}
	if r.any != nil {
		return *r.any, true
	}
	var zero V
	return zero, false
}

type config struct {
	HMACKeyFile    string              `json:"hmac_key_file"`
	PublicKeyFiles []string            `json:"public_key_files"`
	JWKSFile       string              `json:"jwks_file"`
	JWKSRefresh    string              `json:"jwks_refresh"`
	Algorithms     []string            `json:"algorithms"`
	Issuer         string              `json:"issuer"`
	Audience       []string            `json:"audience"`
	Leeway         string              `json:"leeway"`
	AllowNoExpiry  bool                `json:"allow_no_expiry"`
	PublicMethods  []string            `json:"public_methods"`
	Scopes         map[string][]string `json:"scopes"`
	Claims         map[string][]string `json:"claims"`
	ClaimsMetadata bool                `json:"claims_metadata"`
	TokenFile      string              `json:"token_file"`
}

func duration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	return d, nil
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	o := Options{HMACKeyFile: c.HMACKeyFile, PublicKeyFiles: c.PublicKeyFiles, JWKSFile: c.JWKSFile,
		Algorithms: c.Algorithms, Issuer: c.Issuer, Audience: c.Audience, AllowNoExpiry: c.AllowNoExpiry,
		PublicMethods: c.PublicMethods, Scopes: c.Scopes, Claims: c.Claims, ClaimsMetadata: c.ClaimsMetadata,
		TokenFile: c.TokenFile}
	var err error
	if o.JWKSRefresh, err = duration("jwks_refresh", c.JWKSRefresh); err != nil {
		return nil, err
	}
	if o.Leeway, err = duration("leeway", c.Leeway); err != nil {
		return nil, err
	}
	if c.Leeway != "" && o.Leeway == 0 {
		o.Leeway = -1 // "0s" means no skew allowed
	}
	return NewFilter(o)
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: Name, Version: "1.0.0",
		Doc: "JWT verification (HS/RS/PS/ES/EdDSA, key files, JWKS) with per-method scopes and claims",
		Schema: spi.Schema{
			{Name: "hmac_key_file", Type: spi.TypeString, Doc: "server: file with an HMAC secret (HS256/384/512), at least 32 bytes"},
			{Name: "public_key_files", Type: spi.TypeStringList, Doc: "server: PEM public keys or certificates (RSA, EC, Ed25519)"},
			{Name: "jwks_file", Type: spi.TypeString, Doc: "server: JSON Web Key Set file, re-read when it changes"},
			{Name: "jwks_refresh", Type: spi.TypeDuration, Doc: `how often the JWKS file is checked for changes (default "5s")`},
			{Name: "algorithms", Type: spi.TypeStringList, Doc: "accepted algorithms (default: all the keys can verify; never none)"},
			{Name: "issuer", Type: spi.TypeString, Doc: "required iss"},
			{Name: "audience", Type: spi.TypeStringList, Doc: "accepted aud values (one must match)"},
			{Name: "leeway", Type: spi.TypeDuration, Doc: `clock skew allowed on exp/nbf/iat (default "30s")`},
			{Name: "allow_no_expiry", Type: spi.TypeBool, Doc: "accept tokens without exp (default false)"},
			{Name: "public_methods", Type: spi.TypeStringList, Doc: `methods needing no token: "Svc.Method", "Svc.*", "*"`},
			{Name: "scopes", Type: spi.FieldType("map(list(string))"), Doc: "method pattern = scopes required (PermissionDenied otherwise)"},
			{Name: "claims", Type: spi.FieldType("map(list(string))"), Doc: `method pattern = claims required, "name" or "name=value"`},
			{Name: "claims_metadata", Type: spi.TypeBool, Doc: "also pass verified claims as JSON in kite-jwt-claims metadata"},
			{Name: "token_file", Type: spi.TypeString, Doc: "client: file holding the token to send, re-read when it changes"},
		},
		New: New,
	})
}
