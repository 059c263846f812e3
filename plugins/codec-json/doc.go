// Package jsoncodec is Kite's JSON codec (catalog name "json", wire id
// spi.CodecJSON = 1) and its default codec, "auto" (Auto): protobuf when
// a call's request and response are both protobuf messages, JSON
// otherwise, chosen per call, the chosen codec's id in each frame
// (docs/CODECS.md, "The default: auto").
//
// Protobuf messages (proto.Message, or legacy protoadapt.MessageV1) are
// encoded and decoded with protojson, the canonical proto3 JSON mapping:
// encoding/json cannot decode a oneof into generated code, and would
// write 64-bit integers as numbers other languages round. Everything
// else follows encoding/json.
//
// For everything that is not a protobuf message, semantics are exactly
// encoding/json's: struct tags, json.Marshaler,
// json.RawMessage, []byte as base64. Two things differ from json.Marshal
// by default, both configurable: HTML characters are not escaped
// (escape_html), and there is no trailing newline. With
// disallow_unknown_fields, Unmarshal rejects keys that match no field.
// Errors are *spi.Error with code InvalidArgument, wrapping the
// encoding/json error.
//
// Marshal appends into the caller's buffer through a pooled json.Encoder,
// saving the copy json.Marshal makes of every encoding. Unmarshal never
// retains its input (encoding/json copies strings and raw messages).
//
// # Why encoding/json
//
// Four libraries were measured on Kite-like messages (see the compare
// module beside this package and docs/CODECS.md): encoding/json,
// goccy/go-json v0.12.0, bytedance/sonic v1.15.5 and segmentio/encoding
// v0.5.4. Encode+decode, median of 5 runs of -benchtime=200ms on the
// project's shared 2-core amd64 machine:
//
//	library                  128 B          1 KiB           64 KiB
//	encoding/json            3,827 ns  13   11,653 ns  23   1,147,886 ns  1,299
//	goccy/go-json v0.12.0    1,233 ns   7    4,324 ns  10     516,034 ns  1,292
//	bytedance/sonic v1.15.5  1,406 ns   6    4,155 ns   8   1,257,221 ns     62
//	segmentio/encoding       1,632 ns   7   12,078 ns  14     899,966 ns  1,289
//	(ns/op and allocs/op; timings vary ±30% on the shared machine)
//
// This codec itself, through its pooled encoder: 408 B and 12 allocs per
// 128 B round trip (json.Marshal+Unmarshal: 520 B, 13), 1.8 KB and 22 per
// 1 KiB (2.8 KB, 23).
//
// The others are faster, but encoding/json is the default anyway:
//   - It is pure Go with no unsafe tricks, the same on amd64 and arm64,
//     race-detector clean, and maintained with the toolchain. sonic JITs
//     amd64 machine code and falls back to encoding/json elsewhere (and on
//     Go releases it does not yet know); goccy/go-json and segmentio lean
//     on unsafe and have had correctness bugs that encoding/json has not.
//   - It adds no dependency to every Kite user's module graph.
//   - JSON is the codec of interoperability and debugging (kite call,
//     curl-able payloads); the codec for speed is proto, several times
//     faster than any JSON library on the same messages.
//   - encoding/json is being rebuilt on encoding/json/v2 (GOEXPERIMENT=
//     jsonv2 today), which closes much of the gap for free; see the table.
//
// The package registers itself in spi.Default from init.
package jsoncodec
