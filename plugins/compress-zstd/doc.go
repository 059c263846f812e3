// Package zstd is Kite's Zstandard compressor (catalog name "zstd", wire
// id spi.CompressZstd = 2), built on github.com/klauspost/compress/zstd
// (pure Go). It gives the best ratio of Kite's compressors for more CPU,
// and checksums every body by default.
//
// One encoder and one decoder per Compressor are shared by all calls:
// EncodeAll and DecodeAll are safe for concurrent use and pool their
// state internally, so no per-call setup is paid.
//
// Limits: Compress writes one frame per body whose header states the
// decoded size. Decompress reads that header, refuses a body over maxSize
// before decoding (ResourceExhausted), and hands DecodeAll a buffer with
// exactly the stated capacity under WithDecodeAllCapLimit, so a lying
// header cannot make the decoder grow it. Frames without a stated size
// (from streaming encoders) are decoded as a stream into a buffer that
// grows only to maxSize+1; several concatenated frames are accepted.
// Corrupt bodies fail with DataLoss.
//
// Measured on this project's shared 2-core machine (go test -bench .
// -benchtime=200ms, compress+decompress of JSON-like text, median of 3):
//
//	level    128 B          1 KiB          64 KiB
//	fastest  1.7 µs  0.91   20 µs  2.39    0.60 ms  3.87
//	default  3.1 µs  0.91   32 µs  2.45    2.27 ms  4.26
//	better   12 µs   1.09   22 µs  2.50    2.35 ms  4.50
//	best     19 µs   1.09   73 µs  2.55    11.8 ms  4.92
//	(time per op, then ratio in/out; 0-1 allocs/op)
//
// The package registers itself in spi.Default from init.
package zstd
