// Package jwtfilter is the "jwt" filter: it verifies the JSON Web Token
// (RFC 7519) a call carries as "authorization: Bearer <jwt>" and applies
// per-method scope and claim rules, on github.com/golang-jwt/jwt/v5.
//
// Keys: an HMAC secret file (HS256/384/512), PEM public keys or
// certificates (RSA for RS*/PS*, EC P-256/384/521 for ES256/384/512,
// Ed25519 for EdDSA) and a JWK Set file. Each key verifies only its own
// family of algorithms, so an RSA public key is never taken for an HMAC
// secret (algorithm confusion), and "none" is never accepted. A token's
// kid picks its key from the JWKS; without one every key of its
// algorithm is tried. The JWKS file is re-read when it changes — checked
// at most every jwks_refresh, and at once (at most once a second) when a
// token names a kid the set lacks, as after a rotation; a new version
// that does not load is logged and the keys in use are kept. Reload
// forces a re-read.
//
// Checks: signature, exp (required unless allow_no_expiry), nbf and iat
// with a clock-skew leeway (30 s by default), iss and aud when
// configured. Any failure, a missing or malformed token included, is
// Unauthenticated — the caller has no valid credentials — with a fixed
// reason ("expired", "signature does not verify", …) that never quotes
// the token. A valid token lacking what the method's scopes or claims
// rules require is PermissionDenied — the caller is known but not
// allowed — exactly as gRPC uses the two codes. public_methods need no
// token.
//
// The handler reads the verified claims with FromContext. Context values
// cannot cross the plugin bridge, so with claims_metadata the claims also
// travel down the chain as JSON in MetaClaims metadata (FromMetadata);
// the server side deletes any value a caller put there first.
//
// The client side sends the token held in token_file (re-read when the
// file changes), unless the call already carries an authorization value.
//
// The filter decides from metadata alone (MetadataOnly), so a server can
// refuse a call without a valid token before decoding its body.
package jwtfilter
