// Package authfilter is the "auth" filter: bearer-token authentication and
// per-method authorisation.
//
// On the client it adds "authorization: Bearer <token>" to every call's
// metadata (unless the call already carries an authorization value, so a
// per-call credential set with core.WithMetadata wins). In kite.hcl the token
// normally comes from the environment: token = env("KITE_TOKEN").
//
// On the server it reads the bearer token and resolves it to a principal —
// a name for who is calling — from the static tokens in the block or from a
// Verifier (an OAuth introspection, a JWT check, a database lookup) set in
// code or registered by name with RegisterVerifier. A call without a usable
// token, or with one nobody recognises, fails with Unauthenticated before
// the handler runs. Then the method rules apply: public_methods need no token
// at all; a method matched by a methods rule admits only the principals it
// lists, everyone else getting PermissionDenied; other methods admit every
// authenticated principal. The handler finds the principal with
// PrincipalFrom(ctx).
//
// Static tokens are compared in constant time: the presented token and every
// configured one are hashed with SHA-256 and all digests are compared with
// crypto/subtle, without stopping at a match, so response time reveals
// neither a token's length, its prefix nor which entry matched.
package authfilter
