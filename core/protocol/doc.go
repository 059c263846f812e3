// Package protocol implements Kite's wire format, version 1, as described
// in docs/PROTOCOL.md: a fixed 20-byte frame header (magic, version, type,
// flags, codec id, compression id, stream id, metadata and body lengths)
// followed by a compact tag-length-value metadata section and the body.
//
// The decoder checks every length against configured limits before it
// allocates, so a hostile peer cannot make it reserve memory it did not
// send. Buffers come from size-classed pools and are returned by
// Frame.Release.
package protocol
