// Package config reads kite.hcl: the file that assembles a Kite stack from
// plugins, registries, balancers, filters, codecs, servers and clients.
//
// Load (or Parse) decodes the file against an spi.Catalog and returns a
// checked *File of typed structs, with time.Duration and byte sizes
// already parsed and every default applied, for the core to build from.
// See docs/CONFIG.md for every block and attribute.
//
// # Errors
//
// Every problem is an hcl.Diagnostic whose range points at the offending
// token: a misspelled attribute, a value of the wrong type, "5x" where a
// duration belongs, a registry label nobody declared. Unknown names come
// with the closest valid one and the full list. Load returns them as an
// *Error whose message starts "file:line:col: "; FormatDiagnostics prints
// them compiler-style with the source line and a caret (HCL's own text
// writer prints "on FILE line N" with neither column nor caret).
//
// # Design choices, and why
//
//   - Server and client blocks are decoded by hand (block.str, .duration,
//     .size, …) rather than with gohcl, so each semantic check reports at
//     the exact expression, and so the decoder knows which attributes were
//     set. Defaults then apply only to what the file left out, in one place
//     per block (applyDefaults): an explicit zero such as max_conns = 0 or
//     heartbeat interval = "0s" keeps its meaning instead of being
//     mistaken for "unset". DefaultServerConfig / DefaultClientConfig give
//     Go programs the same defaults.
//   - A plugin's own block is checked against the spi.Schema it publishes,
//     converted to an hcldec spec (SchemaSpec), and handed on as JSON with
//     only the attributes present; durations stay strings, as the SPI
//     promises plugins. This is the Terraform provider model: the same
//     schema serves compiled-in and out-of-process plugins, and errors
//     still point into kite.hcl.
//   - An implementation declared by a plugin block has no schema until the
//     binary starts, so its body is converted generically and its attribute
//     ranges are kept (Component.AttrRanges) for the host to report
//     against once the plugin answers.
//   - References (registry = "main", balancer = "weighted", filters = […],
//     codec, compression name) resolve to a block label of that kind first,
//     then to an implementation name, which stands for that implementation
//     with an empty configuration — so registry = "local" works without a
//     block, while an implementation with required attributes must be
//     declared. A server may say registry = "none" to skip registration.
//   - env("NAME") and env("NAME", "default") keep secrets out of the file;
//     an unset variable without a default is an error at the call. There
//     are no variables: a kite.hcl should read the same to everyone.
package config
