package spi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
)

// Kind names an SPI.
type Kind string

// The SPI kinds.
const (
	KindCodec      Kind = "codec"
	KindCompressor Kind = "compressor"
	KindTransport  Kind = "transport"
	KindRegistry   Kind = "registry"
	KindBalancer   Kind = "balancer"
	KindFilter     Kind = "filter"
)

// Kinds lists every SPI kind.
var Kinds = []Kind{KindCodec, KindCompressor, KindTransport, KindRegistry, KindBalancer, KindFilter}

// FieldType is the type of a configuration attribute.
type FieldType string

// Attribute types. Durations are strings such as "500ms"; sizes are
// strings such as "4MiB" or numbers of bytes.
const (
	TypeString     FieldType = "string"
	TypeNumber     FieldType = "number"
	TypeBool       FieldType = "bool"
	TypeDuration   FieldType = "duration"
	TypeStringList FieldType = "list(string)"
	TypeStringMap  FieldType = "map(string)"
)

// Field describes one attribute of a plugin's configuration block.
type Field struct {
	Name     string    `json:"name"`
	Type     FieldType `json:"type"`
	Required bool      `json:"required,omitempty"`
	Doc      string    `json:"doc,omitempty"`
}

// Schema is a plugin's configuration block: the host checks a kite.hcl
// block against it (so errors point into the file) and hands the plugin
// the decoded values as JSON. One schema serves compiled-in and
// out-of-process plugins alike.
type Schema []Field

// Config is a plugin's decoded configuration block as a JSON object;
// nil or "{}" when the block is empty.
type Config []byte

// Decode unmarshals the configuration into v (a pointer to a struct with
// json tags), rejecting unknown fields.
func (c Config) Decode(v any) error {
	if len(c) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(c))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding plugin config: %w", err)
	}
	return nil
}

// Factory builds an implementation from its configuration. The returned
// value implements the interface of the entry's kind (Codec, Registry, …).
type Factory func(cfg Config) (any, error)

// Entry is one implementation in the catalog.
type Entry struct {
	Kind    Kind
	Name    string
	Version string
	// Doc is a one-line description.
	Doc    string
	Schema Schema
	New    Factory
	// Source says where the implementation lives: "builtin" for compiled
	// in, or the plugin binary's path.
	Source string
}

// Validator is implemented by a built implementation that can check its
// configuration beyond the schema.
type Validator interface{ Validate() error }

// Closer is implemented by implementations that hold resources.
type Closer interface{ Close() error }

// Catalog maps (kind, name) to implementations. The zero value is empty
// and ready; Default is the process-wide catalog that compiled-in plugins
// register into from init. Tests build their own.
type Catalog struct {
	mu      sync.RWMutex
	entries map[Kind]map[string]Entry
}

// Default is the process-wide catalog.
var Default = &Catalog{}

// Register adds e to the default catalog; it panics on a duplicate, as
// database/sql.Register does, since that is a programming error.
func Register(e Entry) {
	if err := Default.Add(e); err != nil {
		panic(err)
	}
}

// Add adds e, failing if (kind, name) is taken.
func (c *Catalog) Add(e Entry) error {
	if e.Kind == "" || e.Name == "" || e.New == nil {
		return fmt.Errorf("spi: catalog entry needs kind, name and factory (got %q/%q)", e.Kind, e.Name)
	}
	if e.Source == "" {
		e.Source = "builtin"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[Kind]map[string]Entry)
	}
	m := c.entries[e.Kind]
	if m == nil {
		m = make(map[string]Entry)
		c.entries[e.Kind] = m
	}
	if _, dup := m[e.Name]; dup {
		return fmt.Errorf("spi: %s %q registered twice", e.Kind, e.Name)
	}
	m[e.Name] = e
	return nil
}

// Replace adds e, replacing an existing entry of the same kind and name.
func (c *Catalog) Replace(e Entry) {
	if e.Source == "" {
		e.Source = "builtin"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[Kind]map[string]Entry)
	}
	if c.entries[e.Kind] == nil {
		c.entries[e.Kind] = make(map[string]Entry)
	}
	c.entries[e.Kind][e.Name] = e
}

// Lookup returns the entry for (kind, name).
func (c *Catalog) Lookup(kind Kind, name string) (Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[kind][name]
	return e, ok
}

// Names returns the sorted names registered for kind.
func (c *Catalog) Names(kind Kind) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.entries[kind]))
	for n := range c.entries[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Entries returns every entry, sorted by kind then name.
func (c *Catalog) Entries() []Entry {
	var out []Entry
	for _, k := range Kinds {
		for _, n := range c.Names(k) {
			e, _ := c.Lookup(k, n)
			out = append(out, e)
		}
	}
	return out
}

// Build looks up (kind, name) and builds it with cfg, checking that the
// result implements the kind's interface and running Validate if present.
func (c *Catalog) Build(kind Kind, name string, cfg Config) (any, error) {
	e, ok := c.Lookup(kind, name)
	if !ok {
		return nil, fmt.Errorf("no %s named %q (known: %v)", kind, name, c.Names(kind))
	}
	v, err := e.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if !implements(kind, v) {
		return nil, fmt.Errorf("%s %q: factory returned %T, which is not a %s", kind, name, v, kind)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return nil, fmt.Errorf("%s %q: %w", kind, name, err)
		}
	}
	return v, nil
}

func implements(kind Kind, v any) bool {
	var ok bool
	switch kind {
	case KindCodec:
		_, ok = v.(Codec)
	case KindCompressor:
		_, ok = v.(Compressor)
	case KindTransport:
		_, ok = v.(Transport)
	case KindRegistry:
		_, ok = v.(Registry)
	case KindBalancer:
		_, ok = v.(Balancer)
	case KindFilter:
		_, ok = v.(Filter)
	default:
		ok = v != nil
	}
	return ok
}

// Typed helpers over the default catalog's Build.

// BuildCodec builds a codec from c.
func (c *Catalog) BuildCodec(name string, cfg Config) (Codec, error) {
	v, err := c.Build(KindCodec, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Codec), nil
}

// BuildCompressor builds a compressor from c.
func (c *Catalog) BuildCompressor(name string, cfg Config) (Compressor, error) {
	v, err := c.Build(KindCompressor, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Compressor), nil
}

// BuildRegistry builds a registry from c.
func (c *Catalog) BuildRegistry(name string, cfg Config) (Registry, error) {
	v, err := c.Build(KindRegistry, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Registry), nil
}

// BuildBalancer builds a balancer from c.
func (c *Catalog) BuildBalancer(name string, cfg Config) (Balancer, error) {
	v, err := c.Build(KindBalancer, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Balancer), nil
}

// BuildFilter builds a filter from c.
func (c *Catalog) BuildFilter(name string, cfg Config) (Filter, error) {
	v, err := c.Build(KindFilter, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Filter), nil
}

// BuildTransport builds a transport from c.
func (c *Catalog) BuildTransport(name string, cfg Config) (Transport, error) {
	v, err := c.Build(KindTransport, name, cfg)
	if err != nil {
		return nil, err
	}
	return v.(Transport), nil
}
