package plugin

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// startHint explains go-plugin's start errors in terms of what the plugin
// did wrong, for a plugin author who never read go-plugin's source: the
// raw error follows the hint.
func startHint(err error, timeout time.Duration) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		// go-plugin reports a stdout closed without a line as an
		// unrecognised (empty) message.
		return "it exited (or closed its stdout) before writing its handshake line: "
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		return "the first line on its stdout must be the handshake line (1|1|tcp|127.0.0.1:PORT|grpc…) but it wrote something else; " +
			"stdout is reserved for the handshake, log to stderr: "
	case strings.Contains(msg, "incompatible API version with plugin"):
		if m := pluginVersionRe.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("it answered bridge protocol version %s in its handshake line, this host speaks %d (update the plugin or its SDK): ", m[1], ProtocolVersion)
		}
		return fmt.Sprintf("it answered a bridge protocol version other than %d in its handshake line: ", ProtocolVersion)
	case strings.Contains(msg, "incompatible core API version"):
		return "its handshake line does not start with go-plugin's core protocol version 1: "
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		if timeout > time.Second {
			timeout = timeout.Round(100 * time.Millisecond)
		}
		return fmt.Sprintf("no handshake line on its stdout within the start timeout of %v (hung, or slow to start?): ", timeout)
	case strings.Contains(msg, "plugin exited before we could connect"):
		return "it exited before writing its handshake line: "
	}
	return ""
}

var pluginVersionRe = regexp.MustCompile(`Plugin version: (\d+)`)

// tailWriter keeps the last lines a starting plugin wrote to stderr, so a
// failed start can show them (a Python traceback, a "cannot listen"…).
// go-plugin writes each line without its newline, then the newline.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*tailMax {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-tailMax:]...)
	}
	return len(p), nil
}

// tail returns "; its stderr ended with: …" or "".
func (w *tailWriter) tail() string {
	w.mu.Lock()
	b := bytes.TrimSpace(w.buf)
	w.mu.Unlock()
	if len(b) == 0 {
		return ""
	}
	if len(b) > tailMax {
		b = b[len(b)-tailMax:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "; its stderr ended with:\n" + string(b)
}
