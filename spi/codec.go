package spi

// Codec turns messages into bytes and back. Implementations must be safe
// for concurrent use. The codec id travels in every frame so a server can
// answer each caller in its own codec.
type Codec interface {
	// Name is the codec's catalog name, e.g. "json", "proto".
	Name() string
	// ID is the codec's wire id (see the well-known ids below).
	ID() uint8
	// Marshal appends the encoding of v to dst and returns the result.
	Marshal(dst []byte, v any) ([]byte, error)
	// Unmarshal decodes data into v. It must not retain data after it
	// returns: the caller reuses the buffer.
	Unmarshal(data []byte, v any) error
}

// CodecChooser is implemented by a codec that picks, call by call, the
// concrete codec that encodes it: "auto" (plugins/codec-json) sends
// protobuf when request and response are both protobuf messages and JSON
// otherwise. The chosen codec's id travels in the frame, so the peer
// needs only that codec, and answers in it.
type CodecChooser interface {
	// Choose returns the wire id of the codec for a call that sends req
	// and expects resp (nil for a one-way call). The runtime uses the
	// codec registered under that id; when none is, it encodes with the
	// chooser itself, under the chooser's own id.
	Choose(req, resp any) uint8
}

// Compressor compresses frame bodies. Implementations must be safe for
// concurrent use (pool encoders internally).
type Compressor interface {
	// Name is the catalog name, e.g. "snappy", "zstd", "s2", "gzip".
	Name() string
	// ID is the wire id (see the well-known ids below).
	ID() uint8
	// Compress appends the compressed form of src to dst.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst. It must fail,
	// without allocating beyond it, when the output would exceed maxSize.
	Decompress(dst, src []byte, maxSize int) ([]byte, error)
}

// DecodedSizer is implemented by compressors whose format states the
// decompressed size in a header. A server charges that size to its
// memory budget before decompressing anything, and passes it to
// Decompress as the limit, so a header that understates the size fails
// the call instead of overrunning the charge. A compressor without it is
// charged the whole max frame per body.
type DecodedSizer interface {
	// DecodedLen returns the size src decompresses to, read from its
	// header without decoding, or -1 when the header does not state it.
	// A malformed header is an error.
	DecodedLen(src []byte) (int, error)
}

// Well-known wire ids. Ids 0–63 are reserved for Kite; plugins choose
// 64–255 and declare it in their documentation.
const (
	CodecRaw   uint8 = 0 // body is []byte / *[]byte, passed through
	CodecJSON  uint8 = 1
	CodecProto uint8 = 2
	// CodecAuto marks bodies of the "auto" codec itself (stream messages,
	// which it encodes by Go type: protobuf messages as protobuf,
	// anything else as JSON). Unary calls under "auto" carry CodecProto
	// or CodecJSON instead (CodecChooser).
	CodecAuto uint8 = 3
	// CodecHessian is Hessian 2.0 (plugins/codec-hessian), for Java
	// interop.
	CodecHessian uint8 = 4

	CompressNone   uint8 = 0
	CompressSnappy uint8 = 1
	CompressZstd   uint8 = 2
	CompressS2     uint8 = 3
	// CompressGzip is gzip (RFC 1952; plugins/compress-gzip): the one
	// compressor grpc-go ships, so gRPC peers' "grpc-encoding: gzip".
	CompressGzip uint8 = 4
)
