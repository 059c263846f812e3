package spi

// Metadata is the ordered key/value side channel of a call: auth tokens,
// trace context, user keys. Keys are compared exactly; by convention they
// are lower case. The zero value is empty and ready to use. It is not safe
// for concurrent mutation.
type Metadata struct {
	kv []string // k0, v0, k1, v1, …
}

// Well-known metadata keys. The wire protocol encodes these in one byte.
const (
	MetaAuthorization = "authorization"
	MetaTraceParent   = "traceparent"
	MetaTraceState    = "tracestate"
	MetaCaller        = "kite-caller"
	MetaIdempotent    = "kite-idempotent"
)

// Get returns the first value for key, or "".
func (m *Metadata) Get(key string) string {
	if m == nil {
		return ""
	}
	for i := 0; i+1 < len(m.kv); i += 2 {
		if m.kv[i] == key {
			return m.kv[i+1]
		}
	}
	return ""
}

// Lookup returns the first value for key and whether it was present.
func (m *Metadata) Lookup(key string) (string, bool) {
	if m == nil {
		return "", false
	}
	for i := 0; i+1 < len(m.kv); i += 2 {
		if m.kv[i] == key {
			return m.kv[i+1], true
		}
	}
	return "", false
}

// Set replaces the value of key, or appends it.
func (m *Metadata) Set(key, value string) {
	for i := 0; i+1 < len(m.kv); i += 2 {
		if m.kv[i] == key {
			m.kv[i+1] = value
			return
		}
	}
	m.kv = append(m.kv, key, value)
}

// Add appends a pair without replacing an existing key.
func (m *Metadata) Add(key, value string) { m.kv = append(m.kv, key, value) }

// Delete removes every pair with key.
func (m *Metadata) Delete(key string) {
	out := m.kv[:0]
	for i := 0; i+1 < len(m.kv); i += 2 {
		if m.kv[i] != key {
			out = append(out, m.kv[i], m.kv[i+1])
		}
	}
	clear(m.kv[len(out):])
	m.kv = out
}

// Len returns the number of pairs.
func (m *Metadata) Len() int {
	if m == nil {
		return 0
	}
	return len(m.kv) / 2
}

// Range calls fn for each pair in order until fn returns false.
func (m *Metadata) Range(fn func(key, value string) bool) {
	if m == nil {
		return
	}
	for i := 0; i+1 < len(m.kv); i += 2 {
		if !fn(m.kv[i], m.kv[i+1]) {
			return
		}
	}
}

// Reset empties m, keeping its storage.
func (m *Metadata) Reset() {
	clear(m.kv)
	m.kv = m.kv[:0]
}

// Clone returns an independent copy.
func (m *Metadata) Clone() *Metadata {
	if m == nil {
		return &Metadata{}
	}
	return &Metadata{kv: append([]string(nil), m.kv...)}
}

// CopyFrom replaces m's pairs with src's.
func (m *Metadata) CopyFrom(src *Metadata) {
	m.Reset()
	if src != nil {
		m.kv = append(m.kv, src.kv...)
	}
}
