package jwtfilter_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	jwtfilter "github.com/kiterpc/kite/plugins/filter-jwt"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// keys are generated once: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() *keySet {
	ks := &keySet{hmac: []byte("0123456789abcdef0123456789abcdef-hmac")}
	var err error
	if ks.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if ks.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if ks.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if ks.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, ks.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return ks
})

type keySet struct {
	hmac      []byte
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var base = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return base.Add(time.Duration(c.ns.Load())) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemPublic(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	point, err := k.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
}

func jwks(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a token; claims default to a valid subject, issuer, audience
// and lifetime around base.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": "ada", "iss": "https://auth.test", "aud": "billing",
		"iat": base.Add(-time.Minute).Unix(), "exp": base.Add(time.Hour).Unix(), "scope": "read write"}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	dir   string
	clk   *clock
	logs  *syncBuffer
	f     *jwtfilter.Filter
	jwks  string
	opts  jwtfilter.Options
	calls atomic.Int32
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFixture builds a server-side filter trusting every test key: the
// HMAC secret and the Ed25519 key from files, RSA (kid "r1") and EC
// (kid "e1") from a JWKS.
func newFixture(t testing.TB, edit func(o *jwtfilter.Options)) *fixture {
	t.Helper()
	ks := testKeys()
	fx := &fixture{dir: t.TempDir(), clk: &clock{}, logs: &syncBuffer{}}
	fx.jwks = write(t, fx.dir, "jwks.json", jwks(t, rsaJWK("r1", &ks.rsa.PublicKey), ecJWK("e1", &ks.ec.PublicKey)))
	fx.opts = jwtfilter.Options{
		HMACKeyFile:    write(t, fx.dir, "hmac.key", append(append([]byte(nil), ks.hmac...), '\n')),
		PublicKeyFiles: []string{write(t, fx.dir, "ed.pem", pemPublic(t, ks.ed.Public()))},
		JWKSFile:       fx.jwks,
		Issuer:         "https://auth.test",
		Audience:       []string{"billing", "ops"},
		PublicMethods:  []string{"Health.*"},
		Scopes:         map[string][]string{"Billing.*": {"read"}, "Billing.Refund": {"write", "refund"}},
		Claims:         map[string][]string{"Admin.*": {"role=admin", "tenant"}},
		Logger:         hclog.New(&hclog.LoggerOptions{Output: fx.logs, Level: hclog.Trace}),
		Now:            fx.clk.Now,
	}
	if edit != nil {
		edit(&fx.opts)
	}
	f, err := jwtfilter.NewFilter(fx.opts)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	return fx
}

// call runs a server-side call of method with authorization auth.
func (fx *fixture) call(method, auth string) (*jwtfilter.Claims, *spi.Call, error) {
	call := &spi.Call{Side: spi.ServerSide, Method: method, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
	if auth != "" {
		call.Meta.Set(spi.MetaAuthorization, auth)
	}
	var claims *jwtfilter.Claims
	err := fx.f.Wrap(func(ctx context.Context, c *spi.Call) error {
		fx.calls.Add(1)
		claims, _ = jwtfilter.FromContext(ctx)
		return nil
	})(context.Background(), call)
	return claims, call, err
}

// wantCode checks err is an *spi.Error with code and a message
// containing text, and that the message does not leak the token.
func wantCode(t *testing.T, err error, code spi.Code, text, token string) {
	t.Helper()
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if !strings.Contains(se.Message, text) {
		t.Fatalf("message %q does not say %q", se.Message, text)
	}
	if token != "" {
		for _, part := range strings.Split(token, ".") {
			if len(part) > 8 && strings.Contains(se.Message, part) {
				t.Fatalf("message %q contains part of the token", se.Message)
			}
		}
	}
}

func TestAlgorithms(t *testing.T) {
	ks := testKeys()
	fx := newFixture(t, nil)
	for _, c := range []struct {
		name string
		tok  string
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, ks.hmac, "", nil)},
		{"HS512", sign(t, jwt.SigningMethodHS512, ks.hmac, "", nil)},
		{"RS256", sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", nil)},
		{"ES256", sign(t, jwt.SigningMethodES256, ks.ec, "e1", nil)},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, ks.ed, "", nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			claims, _, err := fx.call("Billing.Get", "Bearer "+c.tok)
			if err != nil {
				t.Fatal(err)
			}
			if claims == nil || claims.Subject != "ada" || claims.Issuer != "https://auth.test" ||
				!claims.HasScope("write") || len(claims.Audience) != 1 || !claims.ExpiresAt.Equal(base.Add(time.Hour)) {
				t.Fatalf("claims reaching the handler: %+v", claims)
			}
		})
	}
	// RS256 signed by the JWKS key but presented without a kid: every key
	// of the algorithm is tried.
	if _, _, err := fx.call("Billing.Get", "Bearer "+sign(t, jwt.SigningMethodRS256, ks.rsa, "", nil)); err != nil {
		t.Fatalf("RS256 without kid: %v", err)
	}
}

func TestBadTokens(t *testing.T) {
	ks := testKeys()
	fx := newFixture(t, nil)
	good := sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", nil)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64([]byte(`{"sub":"root","iss":"https://auth.test","aud":"billing","exp":9999999999,"scope":"read write refund"}`)) + "." + parts[2]
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "ada", "iss": "https://auth.test", "aud": "billing",
		"exp": base.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// Algorithm confusion: HS256 "signed" with the RSA public key's PEM
	// as the secret, hoping the server uses its RSA key as an HMAC key.
	confused := sign(t, jwt.SigningMethodHS256, pemPublic(t, &ks.rsa.PublicKey), "r1", nil)
	for _, c := range []struct {
		name, auth, want string
	}{
		{"missing", "", "missing bearer token"},
		{"not bearer", "Basic YWRhOnB3", "malformed"},
		{"garbage", "Bearer not.a.jwt", "malformed"},
		{"two segments", "Bearer " + parts[0] + "." + parts[1], "malformed"},
		{"huge", "Bearer " + strings.Repeat("a", jwtfilter.MaxTokenSize+1), "exceeds"},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", jwt.MapClaims{"exp": base.Add(-31 * time.Second).Unix()}), "expired"},
		{"not yet valid", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", jwt.MapClaims{"nbf": base.Add(31 * time.Second).Unix()}), "not valid yet"},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", jwt.MapClaims{"exp": nil}), "required claim missing"},
		{"wrong issuer", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", jwt.MapClaims{"iss": "https://evil.test"}), "wrong issuer"},
		{"wrong audience", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", jwt.MapClaims{"aud": []string{"payroll"}}), "wrong audience"},
		{"forged (other key, same kid)", "Bearer " + sign(t, jwt.SigningMethodRS256, ks.rsa2, "r1", nil), "signature does not verify"},
		{"forged (other EC key, no kid)", "Bearer " + sign(t, jwt.SigningMethodES256, ks.ec2, "", nil), "signature does not verify"},
		{"forged HMAC", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"), "", nil), "signature does not verify"},
		{"tampered payload", "Bearer " + tampered, "signature does not verify"},
		{"alg none", "Bearer " + noneTok, `signing algorithm "none" not accepted`},
		{"alg confusion", "Bearer " + confused, `key "r1" does not verify HS256`},
		{"unknown kid", "Bearer " + sign(t, jwt.SigningMethodES256, ks.ec, "nobody", nil), `no key with id "nobody"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := fx.call("Billing.Get", c.auth)
			wantCode(t, err, spi.Unauthenticated, c.want, strings.TrimPrefix(c.auth, "Bearer "))
		})
	}
	if n := fx.calls.Load(); n != 0 {
		t.Fatalf("the handler ran %d times for refused tokens", n)
	}
	// Clock skew: 29 s past exp and 29 s before nbf are inside the
	// default 30 s leeway.
	for _, cl := range []jwt.MapClaims{{"exp": base.Add(-29 * time.Second).Unix()}, {"nbf": base.Add(29 * time.Second).Unix()}} {
		if _, _, err := fx.call("Billing.Get", "Bearer "+sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", cl)); err != nil {
			t.Errorf("%v within the leeway: %v", cl, err)
		}
	}
	if strings.Contains(fx.logs.String(), parts[2]) {
		t.Fatal("a token reached the log")
	}
}

func TestPermissions(t *testing.T) {
	ks := testKeys()
	fx := newFixture(t, nil)
	tok := func(c jwt.MapClaims) string { return "Bearer " + sign(t, jwt.SigningMethodES256, ks.ec, "e1", c) }

	// Public methods need nothing; an invalid token there is ignored.
	if _, _, err := fx.call("Health.Check", ""); err != nil {
		t.Fatalf("public method: %v", err)
	}
	// Authenticated but without the scope: PermissionDenied.
	_, _, err := fx.call("Billing.Refund", tok(nil))
	wantCode(t, err, spi.PermissionDenied, `Billing.Refund needs scope "refund"`, "")
	if _, _, err := fx.call("Billing.Refund", tok(jwt.MapClaims{"scope": nil, "scp": []string{"write", "refund"}})); err != nil {
		t.Fatalf("scp list with the scopes: %v", err)
	}
	_, _, err = fx.call("Billing.Get", tok(jwt.MapClaims{"scope": "write"}))
	wantCode(t, err, spi.PermissionDenied, `needs scope "read"`, "")
	// The same call without a token is Unauthenticated, not denied.
	_, _, err = fx.call("Billing.Refund", "")
	wantCode(t, err, spi.Unauthenticated, "missing bearer token", "")

	_, _, err = fx.call("Admin.Purge", tok(jwt.MapClaims{"role": "user", "tenant": "t1"}))
	wantCode(t, err, spi.PermissionDenied, `needs claim "role" = "admin"`, "")
	_, _, err = fx.call("Admin.Purge", tok(jwt.MapClaims{"role": "admin"}))
	wantCode(t, err, spi.PermissionDenied, `needs claim "tenant"`, "")
	if _, _, err := fx.call("Admin.Purge", tok(jwt.MapClaims{"role": []string{"user", "admin"}, "tenant": "t1"})); err != nil {
		t.Fatalf("role list containing admin: %v", err)
	}
	// Methods without rules admit any valid token.
	if _, _, err := fx.call("Other.Call", tok(jwt.MapClaims{"scope": nil})); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsMetadata(t *testing.T) {
	ks := testKeys()
	forged := `{"sub":"root","scope":"admin"}`
	fx := newFixture(t, nil)
	// A caller's own kite-jwt-claims never reaches the handler.
	call := &spi.Call{Side: spi.ServerSide, Method: "Health.Check", Meta: &spi.Metadata{}}
	call.Meta.Set(jwtfilter.MetaClaims, forged)
	var seen string
	var present bool
	_ = fx.f.Wrap(func(_ context.Context, c *spi.Call) error {
		seen, present = c.Meta.Lookup(jwtfilter.MetaClaims)
		return nil
	})(context.Background(), call)
	if present {
		t.Fatalf("a forged %s reached the handler: %q", jwtfilter.MetaClaims, seen)
	}

	fx = newFixture(t, func(o *jwtfilter.Options) { o.ClaimsMetadata = true })
	call = &spi.Call{Side: spi.ServerSide, Method: "Billing.Get", Meta: &spi.Metadata{}}
	call.Meta.Set(jwtfilter.MetaClaims, forged)
	call.Meta.Set(spi.MetaAuthorization, "Bearer "+sign(t, jwt.SigningMethodEdDSA, ks.ed, "", jwt.MapClaims{"tenant": "t9"}))
	var fromMeta *jwtfilter.Claims
	err := fx.f.Wrap(func(_ context.Context, c *spi.Call) error {
		fromMeta, _ = jwtfilter.FromMetadata(c.Meta)
		return nil
	})(context.Background(), call)
	if err != nil || fromMeta == nil || fromMeta.Subject != "ada" || fromMeta.Raw["tenant"] != "t9" || !fromMeta.HasScope("read") {
		t.Fatalf("claims from metadata: %+v (%v)", fromMeta, err)
	}
}

func TestJWKSRotation(t *testing.T) {
	ks := testKeys()
	// No key files: a token whose kid the set lacks would otherwise be
	// tried against them.
	fx := newFixture(t, func(o *jwtfilter.Options) { o.JWKSRefresh, o.PublicKeyFiles = time.Minute, nil })
	newTok := "Bearer " + sign(t, jwt.SigningMethodEdDSA, ks.ed, "ed-2027", nil)
	_, _, err := fx.call("Billing.Get", newTok)
	wantCode(t, err, spi.Unauthenticated, `no key with id "ed-2027"`, "")

	// The key set rotates: r1 leaves, ed-2027 arrives. A token naming the
	// new kid makes the filter look at the file at once.
	write(t, fx.dir, "jwks.json", jwks(t, edJWK("ed-2027", ks.ed.Public().(ed25519.PublicKey)), ecJWK("e1", &ks.ec.PublicKey)))
	fx.clk.Advance(2 * time.Second) // past the once-a-second bound on look-ups by kid
	if _, _, err := fx.call("Billing.Get", newTok); err != nil {
		t.Fatalf("a token signed by the rotated-in key: %v", err)
	}
	_, _, err = fx.call("Billing.Get", "Bearer "+sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", nil))
	wantCode(t, err, spi.Unauthenticated, `no key with id "r1"`, "")

	// A broken new version is reported and the keys in use are kept.
	write(t, fx.dir, "jwks.json", []byte(`{"keys":[{"kty":"EC","kid":"e1","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	fx.clk.Advance(2 * time.Minute)
	if _, _, err := fx.call("Billing.Get", newTok); err != nil {
		t.Fatalf("after a broken JWKS update, the previous keys should stay: %v", err)
	}
	if logs := fx.logs.String(); !strings.Contains(logs, "keeping the keys in use") || !strings.Contains(logs, `kid \"e1\"`) {
		t.Fatalf("the broken JWKS was not reported clearly:\n%s", logs)
	}
	if err := fx.f.Reload(); err == nil || !strings.Contains(err.Error(), "coordinates must be 32 bytes") {
		t.Fatalf("Reload of a broken JWKS: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ks := testKeys()
	dir := t.TempDir()
	privDER, _ := x509.MarshalPKCS8PrivateKey(ks.ec)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := ecJWK("bad", &ks.ec.PublicKey)
	offCurve["y"] = b64(make([]byte, 32))
	wrongAlg := rsaJWK("r", &ks.rsa.PublicKey)
	wrongAlg["alg"] = "ES256"
	badE := rsaJWK("e", &ks.rsa.PublicKey)
	badE["e"] = b64([]byte{2})
	for _, c := range []struct {
		name string
		o    jwtfilter.Options
		want string
	}{
		{"nothing", jwtfilter.Options{}, "set hmac_key_file, public_key_files or jwks_file"},
		{"short secret", jwtfilter.Options{HMACKeyFile: write(t, dir, "short", []byte("tiny"))}, "at least 32"},
		{"private key", jwtfilter.Options{PublicKeyFiles: []string{write(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}}, "a private key"},
		{"small RSA", jwtfilter.Options{PublicKeyFiles: []string{write(t, dir, "small.pem", pemPublic(t, &small.PublicKey))}}, "1024 bits"},
		{"no PEM", jwtfilter.Options{PublicKeyFiles: []string{write(t, dir, "empty.pem", []byte("hello"))}}, "no PEM public key"},
		{"missing file", jwtfilter.Options{JWKSFile: filepath.Join(dir, "nope.json")}, "no such file"},
		{"JWKS not JSON", jwtfilter.Options{JWKSFile: write(t, dir, "a.json", []byte("<html>"))}, "not a JWK Set"},
		{"JWKS empty", jwtfilter.Options{JWKSFile: write(t, dir, "b.json", []byte(`{"keys":[]}`))}, "no signature verification keys"},
		{"JWKS off-curve", jwtfilter.Options{JWKSFile: write(t, dir, "c.json", jwks(t, offCurve))}, `(kid "bad"): not a point on P-256`},
		{"JWKS alg mismatch", jwtfilter.Options{JWKSFile: write(t, dir, "d.json", jwks(t, wrongAlg))}, `"alg": "ES256" does not fit a RSA key`},
		{"JWKS bad exponent", jwtfilter.Options{JWKSFile: write(t, dir, "e.json", jwks(t, badE))}, "not a valid RSA public exponent"},
		{"JWKS duplicate kid", jwtfilter.Options{JWKSFile: write(t, dir, "f.json", jwks(t, ecJWK("k", &ks.ec.PublicKey), ecJWK("k", &ks.ec2.PublicKey)))}, `kid "k" appears twice`},
		{"JWKS bad base64", jwtfilter.Options{JWKSFile: write(t, dir, "g.json", []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"%%%"}]}`))}, "not base64url"},
		{"unknown alg", jwtfilter.Options{HMACKeyFile: write(t, dir, "h", ks.hmac), Algorithms: []string{"none"}}, `"none" is not a JWS algorithm`},
		{"bad pattern", jwtfilter.Options{HMACKeyFile: write(t, dir, "h2", ks.hmac), Scopes: map[string][]string{"Svc*": {"x"}}}, `pattern "Svc*"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := jwtfilter.NewFilter(c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// From kite.hcl: durations and unknown keys.
	if _, err := spi.Default.Build(spi.KindFilter, "jwt", spi.Config(`{"hmac_key_file":"`+write(t, dir, "h3", ks.hmac)+`","leeway":"forever"}`)); err == nil || !strings.Contains(err.Error(), "leeway") {
		t.Fatalf("bad leeway: %v", err)
	}
	if _, err := spi.Default.Build(spi.KindFilter, "jwt", spi.Config(`{"hmac_key":"x"}`)); err == nil {
		t.Fatal("an unknown setting was accepted")
	}
}

func TestClientTokenFile(t *testing.T) {
	ks := testKeys()
	dir := t.TempDir()
	clk := &clock{}
	tok1 := sign(t, jwt.SigningMethodHS256, ks.hmac, "", nil)
	path := write(t, dir, "token", []byte(tok1+"\n"))
	f, err := jwtfilter.NewFilter(jwtfilter.Options{TokenFile: path, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	send := func(preset string) string {
		call := &spi.Call{Side: spi.ClientSide, Method: "Billing.Get", Meta: &spi.Metadata{}}
		if preset != "" {
			call.Meta.Set(spi.MetaAuthorization, preset)
		}
		var got string
		_ = f.Wrap(func(_ context.Context, c *spi.Call) error { got = c.Meta.Get(spi.MetaAuthorization); return nil })(context.Background(), call)
		return got
	}
	if got := send(""); got != "Bearer "+tok1 {
		t.Fatalf("sent %q", got)
	}
	if got := send("Bearer per-call"); got != "Bearer per-call" {
		t.Fatalf("a per-call credential was replaced: %q", got)
	}
	tok2 := sign(t, jwt.SigningMethodHS256, ks.hmac, "", jwt.MapClaims{"sub": "bob"})
	write(t, dir, "token", []byte(tok2))
	clk.Advance(2 * time.Second)
	if got := send(""); got != "Bearer "+tok2 {
		t.Fatal("the rotated token file was not picked up")
	}
	// A client-only filter on the server side refuses (fails closed).
	_, err = f.Verify("Bearer " + tok2)
	wantCode(t, err, spi.Unauthenticated, "no verification keys", "")
}

func TestConformance(t *testing.T) {
	ks := testKeys()
	fx := newFixture(t, func(o *jwtfilter.Options) {
		o.Scopes, o.Claims = nil, nil
		o.Now = nil // the suite's calls happen now
	})
	tok := sign(t, jwt.SigningMethodEdDSA, ks.ed, "", jwt.MapClaims{"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	spitest.FilterSuite{
		Filter: fx.f,
		Prepare: func(call *spi.Call) {
			if call.Side == spi.ServerSide {
				call.Meta.Set(spi.MetaAuthorization, "Bearer "+tok)
			}
		},
		Reject:     func(call *spi.Call) { call.Side = spi.ServerSide },
		RejectCode: spi.Unauthenticated,
	}.Run(t)
}

func TestAlgorithmsSetting(t *testing.T) {
	ks := testKeys()
	fx := newFixture(t, func(o *jwtfilter.Options) { o.Algorithms = []string{"ES256"} })
	_, _, err := fx.call("Other.Call", "Bearer "+sign(t, jwt.SigningMethodRS256, ks.rsa, "r1", nil))
	wantCode(t, err, spi.Unauthenticated, `signing algorithm "RS256" not accepted`, "")
	if _, _, err := fx.call("Other.Call", "Bearer "+sign(t, jwt.SigningMethodES256, ks.ec, "e1", nil)); err != nil {
		t.Fatal(err)
	}
}
