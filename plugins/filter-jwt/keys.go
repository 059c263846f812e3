package jwtfilter

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// key is one verification key and the algorithms it may verify. Binding
// each key to its family is what stops algorithm confusion: an RSA
// public key is never offered as an HMAC secret.
type key struct {
	kid  string // from a JWKS; "" for key files
	algs []string
	pub  any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
	from string
}

func (k *key) allows(alg string) bool {
	for _, a := range k.algs {
		if a == alg {
			return true
		}
	}
	return false
}

var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
)

// allAlgorithms are the algorithms the filter knows; "none" is never one.
var allAlgorithms = map[string]bool{
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

const (
	minRSABits  = 2048
	minHMACSize = 32 // bytes: RFC 7518 §3.2 wants a key at least as long as the hash
)

func ecAlg(c elliptic.Curve) (string, error) {
	switch c {
	case elliptic.P256():
		return "ES256", nil
	case elliptic.P384():
		return "ES384", nil
	case elliptic.P521():
		return "ES512", nil
	}
	return "", fmt.Errorf("elliptic curve %s is not one JWT uses (P-256, P-384, P-521)", c.Params().Name)
}

// publicKey wraps a parsed public key with its algorithms.
func publicKey(pub any, from string) (*key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", p.N.BitLen(), minRSABits)
		}
		return &key{algs: rsaAlgs, pub: p, from: from}, nil
	case *ecdsa.PublicKey:
		alg, err := ecAlg(p.Curve)
		if err != nil {
			return nil, err
		}
		return &key{algs: []string{alg}, pub: p, from: from}, nil
	case ed25519.PublicKey:
		return &key{algs: ed25519Algs, pub: p, from: from}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// loadPEMKeys reads the public keys in a PEM file: PUBLIC KEY (RSA, EC or
// Ed25519), RSA PUBLIC KEY or CERTIFICATE blocks. A private key in the
// file is refused: a verifier has no business holding one.
func loadPEMKeys(path string) ([]*key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []*key
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		where := fmt.Sprintf("%s: PEM block %d (%s)", path, n, block.Type)
		var pub any
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE") {
				return nil, fmt.Errorf("%s: a private key; give the filter only public keys", where)
			}
			return nil, fmt.Errorf("%s: not a public key or certificate", where)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		k, err := publicKey(pub, where)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key or certificate in the file", path)
	}
	return keys, nil
}

// loadHMACKey reads an HMAC secret: the file's bytes, less surrounding
// whitespace (secrets written by hand end in a newline).
func loadHMACKey(path string) (*key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(data)))
	if len(secret) < minHMACSize {
		return nil, fmt.Errorf("%s: HMAC secret of %d bytes; at least %d are required", path, len(secret), minHMACSize)
	}
	return &key{algs: hmacAlgs, pub: secret, from: path}, nil
}

// jwk is one JSON Web Key (RFC 7517, 7518, 8037): the members used to
// verify signatures.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// maxJWKSSize bounds a JWKS file: real ones are a few KiB.
const maxJWKSSize = 1 << 20

// parseJWKS parses a JWK Set. Keys for encryption ("use": "enc") and of
// key types JWS does not use are skipped; a signing key that is
// malformed fails the whole set, naming it, so a broken file never
// half-loads.
func parseJWKS(data []byte, from string) ([]*key, error) {
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("%s: %d bytes; a JWKS larger than %d is refused", from, len(data), maxJWKSSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JWK Set: %v", from, err)
	}
	var keys []*key
	kids := map[string]bool{}
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("%s: keys[%d]: %v", from, i, err)
		}
		if j.Use == "enc" {
			continue
		}
		where := fmt.Sprintf("%s: keys[%d]", from, i)
		if j.Kid != "" {
			where += fmt.Sprintf(" (kid %q)", j.Kid)
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if k == nil {
			continue // a key type JWS does not sign with
		}
		if j.Alg != "" {
			if !k.allows(j.Alg) {
				return nil, fmt.Errorf("%s: \"alg\": %q does not fit a %s key (it allows %s)", where, j.Alg, j.Kty, strings.Join(k.algs, ", "))
			}
			k.algs = []string{j.Alg}
		}
		if j.Kid != "" {
			if kids[j.Kid] {
				return nil, fmt.Errorf("%s: kid %q appears twice", from, j.Kid)
			}
			kids[j.Kid] = true
		}
		k.kid, k.from = j.Kid, where
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no signature verification keys in the set", from)
	}
	return keys, nil
}

func b64(field, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%q is missing", field)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url: %v", field, err)
	}
	return b, nil
}

func (j *jwk) key() (*key, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64("n", j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64("e", j.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New(`"e" is larger than 32 bits`)
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, fmt.Errorf(`"e" = %d is not a valid RSA public exponent`, exp)
		}
		return publicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, "")
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("EC curve %q is not supported (P-256, P-384, P-521)", j.Crv)
		}
		x, err := b64("x", j.X)
		if err != nil {
			return nil, err
		}
		y, err := b64("y", j.Y)
		if err != nil {
			return nil, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, fmt.Errorf("%s coordinates must be %d bytes each, got %d and %d", j.Crv, size, len(x), len(y))
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("not a point on %s: %v", j.Crv, err)
		}
		return publicKey(pub, "")
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q is not supported (Ed25519)", j.Crv)
		}
		x, err := b64("x", j.X)
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes, want %d", len(x), ed25519.PublicKeySize)
		}
		return publicKey(ed25519.PublicKey(x), "")
	case "oct":
		k, err := b64("k", j.K)
		if err != nil {
			return nil, err
		}
		if len(k) < minHMACSize {
			return nil, fmt.Errorf("HMAC key of %d bytes; at least %d are required", len(k), minHMACSize)
		}
		return &key{algs: hmacAlgs, pub: k}, nil
	case "":
		return nil, errors.New(`"kty" is missing`)
	}
	return nil, nil
}
