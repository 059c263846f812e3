// Package snappy is Kite's snappy compressor (catalog name "snappy", wire
// id spi.CompressSnappy = 1), built on github.com/golang/snappy's block
// format: one frame body is one block, headed by its decoded length.
//
// Snappy trades ratio for speed: it is the cheapest of Kite's
// compressors to run and compresses JSON-like bodies about 2-4x.
//
// Limits: the decoded length in the block header is checked against the
// caller's maxSize before anything is allocated, and a header claiming
// more than snappy can express for the input length (22 bytes out per
// byte in) is rejected as corrupt. Errors are *spi.Error:
// ResourceExhausted for a body over maxSize, DataLoss for a corrupt one.
//
// Measured on this project's 2-core CI machine (go test -bench .
// -benchtime=200ms, compress+decompress of JSON-like text):
//
//	size     ns/op  allocs/op  ratio (in/out)
//	128 B      103          0  0.97
//	1 KiB    1,328          0  1.93
//	64 KiB  93,988          0  2.83
//
// Below ~1 KiB bodies do not shrink; keep the compression threshold at
// 1 KiB or above. See docs/CODECS.md for all compressors side by side.
//
// The package registers itself in spi.Default from init; import it for
// its side effect to make "snappy" available in kite.hcl.
package snappy
