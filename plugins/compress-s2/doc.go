// Package s2 is Kite's S2 compressor (catalog name "s2", wire id
// spi.CompressS2 = 3), built on github.com/klauspost/compress/s2's block
// format: Snappy's successor, faster to encode with a better ratio, and
// its decoder reads Snappy blocks too.
//
// Levels (config "level"): "default" (s2.Encode), "better"
// (s2.EncodeBetter) and "best" (s2.EncodeBest). Decoding speed does not
// depend on the level.
//
// Limits: the decoded length in the block header is checked against the
// caller's maxSize before anything is allocated. Errors are *spi.Error:
// ResourceExhausted for a body over maxSize, DataLoss for a corrupt one.
//
// Measured on this project's shared 2-core machine (go test -bench .
// -benchtime=200ms, compress+decompress of JSON-like text, median of 3):
//
//	level    128 B          1 KiB           64 KiB          allocs/op
//	default  119 ns  0.97   1,544 ns  1.94  135 µs   2.85   0
//	better   216 ns  0.97   3,965 ns  2.04  130 µs   3.12   0
//	best     150 µs  1.04   274 µs    2.07  11.7 ms  3.41   0
//	(time per op, then ratio in/out)
//
// "best" resets large match tables on every call, which makes it costly
// even for tiny bodies: use it for batch payloads, not per small RPC.
//
// The package registers itself in spi.Default from init.
package s2
