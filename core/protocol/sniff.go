package protocol

import "io"

// Peek returns the next n bytes without consuming them, blocking until
// they arrive (or fewer with the read error). The server uses it to tell
// a Kite peer from an HTTP/2 (gRPC) client by the first bytes before it
// reads any frame.
func (r *Reader) Peek(n int) ([]byte, error) { return r.r.Peek(n) }

// Discard skips the next n buffered bytes (after a Peek that returned
// them).
func (r *Reader) Discard(n int) (int, error) { return r.r.Discard(n) }

// Size is the read buffer's size: the most one Peek can return.
func (r *Reader) Size() int { return r.r.Size() }

// Buffered returns the reader's buffered source, so a connection handed
// to another protocol after Peek loses none of the bytes already read.
func (r *Reader) Buffered() io.Reader { return r.r }

// BufferedLen is the number of bytes read from the socket and not yet
// consumed.
func (r *Reader) BufferedLen() int { return r.r.Buffered() }
