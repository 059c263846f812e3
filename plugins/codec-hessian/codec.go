package hessiancodec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/kiterpc/kite/spi"
)

// Name is the catalog name of the codec.
const Name = "hessian"

// ID is the codec's wire id, spi.CodecHessian.
const ID = spi.CodecHessian

// ClassKey is the key under which a Java object of a class no Go type is
// registered for decodes into a map[string]any: its class name.
const ClassKey = hessian.ClassKey

// DefaultMaxDepth bounds the nesting of lists, maps and objects, decoding
// and encoding.
const DefaultMaxDepth = 64

// Config is the codec's kite.hcl block.
type Config struct {
	// MaxDepth bounds nesting (default DefaultMaxDepth).
	MaxDepth int `json:"max_depth"`
}

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindCodec,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "Hessian 2.0 bodies (Java interop), Go structs bound to Java classes",
		Schema: spi.Schema{
			{Name: "max_depth", Type: spi.TypeNumber, Doc: "maximum nesting of lists, maps and objects (default 64)"},
		},
		New: func(cfg spi.Config) (any, error) {
			var c Config
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
			if c.MaxDepth < 0 || c.MaxDepth > 10000 {
				return nil, fmt.Errorf("max_depth = %d: want 1–10000 (0 for the default)", c.MaxDepth)
			}
			return NewWithConfig(c), nil
		},
	})
}

// Codec is the Hessian 2.0 codec. It is safe for concurrent use.
type Codec struct {
	maxDepth int
}

// New returns the codec with the default configuration.
func New() *Codec { return NewWithConfig(Config{}) }

// NewWithConfig returns the codec configured by c.
func NewWithConfig(c Config) *Codec {
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	return &Codec{maxDepth: c.MaxDepth}
}

// Name returns "hessian".
func (*Codec) Name() string { return Name }

// ID returns the codec's wire id.
func (*Codec) ID() uint8 { return ID }

// ---------------------------------------------------------------- classes

// Go struct types are bound to Java class names once, process-wide (the
// Hessian library keeps one registry): by a JavaClassName() string
// method, by Register, or by a `java:"…"` tag on a blank field:
//
//	type User struct {
//		_    struct{} `java:"com.example.User"`
//		Name string   `hessian:"name"`
//	}
var (
	classMu    sync.Mutex
	registered = map[string]reflect.Type{} // Java name -> Go type
	names      = map[reflect.Type]string{} // Go type -> Java name
	prepared   sync.Map                    // reflect.Type -> error (nil when ready)
)

var timeType = reflect.TypeFor[time.Time]()

// Register binds the Go struct type of prototype (a T or *T) to the Java
// class javaName, for types that do not name their class themselves. It
// fails if either is already bound to another.
func Register(javaName string, prototype any) error {
	t := reflect.TypeOf(prototype)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return fmt.Errorf("hessian: Register(%q, %T): want a struct or a pointer to one", javaName, prototype)
	}
	if javaName == "" {
		return fmt.Errorf("hessian: Register(%q, %T): empty class name", javaName, prototype)
	}
	classMu.Lock()
	defer classMu.Unlock()
	if err := bindLocked(javaName, t); err != nil {
		return err
	}
	prepared.Clear() // a type refused for want of a class may now have one
	return nil
}

func bindLocked(javaName string, t reflect.Type) error {
	if other, ok := registered[javaName]; ok && other != t {
		return fmt.Errorf("hessian: Java class %s is already bound to Go type %v, not %v", javaName, other, t)
	}
	if other, ok := names[t]; ok && other != javaName {
		return fmt.Errorf("hessian: Go type %v is already bound to Java class %s, not %s", t, other, javaName)
	}
	if _, ok := names[t]; ok {
		return nil
	}
	if hessian.RegisterPOJOMapping(javaName, reflect.New(t).Interface()) < 0 {
		return fmt.Errorf("hessian: the Hessian library refused to bind %v to %s", t, javaName)
	}
	registered[javaName], names[t] = t, javaName
	return nil
}

var pojoType = reflect.TypeFor[hessian.POJO]()

// className finds the Java class of struct type t.
func className(t reflect.Type) (string, bool) {
	if name, ok := names[t]; ok {
		return name, true
	}
	for _, c := range []reflect.Type{t, reflect.PointerTo(t)} {
		if c.Implements(pojoType) {
			return reflect.New(t).Interface().(hessian.POJO).JavaClassName(), true
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "_" {
			if name := f.Tag.Get("java"); name != "" {
				return name, true
			}
		}
	}
	return "", false
}

// prepare binds every struct type reachable from t to its Java class,
// so the library encodes it as an object and decodes that class into it.
func prepare(t reflect.Type) error {
	if t == nil {
		return nil
	}
	if err, ok := prepared.Load(t); ok {
		if err == nil {
			return nil
		}
		return err.(error)
	}
	classMu.Lock()
	err := prepareLocked(t, map[reflect.Type]bool{})
	classMu.Unlock()
	prepared.Store(t, err)
	return err
}

func prepareLocked(t reflect.Type, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return prepareLocked(t.Elem(), seen)
	case reflect.Map:
		if err := prepareLocked(t.Key(), seen); err != nil {
			return err
		}
		return prepareLocked(t.Elem(), seen)
	case reflect.Struct:
		if t == timeType || t.PkgPath() == "" {
			return nil
		}
		if !t.Implements(pojoType) && !reflect.PointerTo(t).Implements(pojoType) {
			name, ok := className(t)
			if !ok {
				return fmt.Errorf("hessian: Go type %v has no Java class: give it a JavaClassName() string method, a blank field with a java:\"com.example.Name\" tag, or hessiancodec.Register it", t)
			}
			if err := bindLocked(name, t); err != nil {
				return err
			}
		} else if _, ok := names[t]; !ok {
			name, _ := className(t)
			if err := bindLocked(name, t); err != nil {
				return err
			}
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() && f.Tag.Get("hessian") != "-" {
				if err := prepareLocked(f.Type, seen); err != nil {
					return err
				}
			}
		}
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return fmt.Errorf("hessian: Go type %v has no Hessian form", t)
	}
	return nil
}

// ---------------------------------------------------------------- encode

// Marshal appends the Hessian 2.0 encoding of v to dst. Structs must be
// bound to Java classes (see Register); a value that refers to itself
// (a pointer, map or slice cycle) or nests deeper than the limit is an
// error, since Hessian libraries recurse through it.
func (c *Codec) Marshal(dst []byte, v any) (out []byte, err error) {
	if err := c.check(reflect.ValueOf(v)); err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "hessian: encoding %T: %v", v, err)
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, spi.Errorf(spi.InvalidArgument, "hessian: encoding %T: %v", v, r)
		}
	}()
	e := hessian.NewEncoder()
	if err := e.Encode(v); err != nil {
		return dst, spi.WrapError(spi.InvalidArgument, err, "hessian: encoding %T: %v", v, err)
	}
	return append(dst, e.Buffer()...), nil
}

// check walks v before the library does: it binds the struct types it
// meets, and refuses cycles, excessive nesting and values Hessian has
// no form for (the library would recurse forever, crash or write a
// value no peer reads back).
func (c *Codec) check(v reflect.Value) error {
	w := &walker{max: c.maxDepth, path: map[uintptr]bool{}}
	return w.walk(v, 0)
}

type walker struct {
	max  int
	path map[uintptr]bool // containers on the path from the root
}

func (w *walker) walk(v reflect.Value, depth int) error {
	if !v.IsValid() {
		return nil
	}
	if depth > w.max {
		return fmt.Errorf("nesting deeper than %d", w.max)
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.walk(v.Elem(), depth)
	case reflect.Pointer, reflect.Map, reflect.Slice:
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // binary
		}
		p := v.Pointer()
		if v.Kind() == reflect.Slice {
			p ^= uintptr(v.Len()) << 1 // distinct sub-slices of one array
		}
		if w.path[p] {
			return fmt.Errorf("a %v that contains itself (Hessian encoders recurse through cycles)", v.Type())
		}
		w.path[p] = true
		defer delete(w.path, p)
		switch v.Kind() {
		case reflect.Pointer:
			return w.walk(v.Elem(), depth)
		case reflect.Map:
			if err := prepare(v.Type()); err != nil {
				return err
			}
			it := v.MapRange()
			for it.Next() {
				if err := w.walk(it.Key(), depth+1); err != nil {
					return err
				}
				if err := w.walk(it.Value(), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		fallthrough
	case reflect.Array:
		if err := prepare(v.Type()); err != nil {
			return err
		}
		for i := range v.Len() {
			if err := w.walk(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
		if v.Type() == timeType {
			return nil
		}
		if err := prepare(v.Type()); err != nil {
			return err
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() && f.Tag.Get("hessian") != "-" {
				if err := w.walk(v.Field(i), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	case reflect.Uint64, reflect.Uint:
		if v.Uint() > math.MaxInt64 {
			return fmt.Errorf("uint %d does not fit a Java long", v.Uint())
		}
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return fmt.Errorf("a %v has no Hessian form", v.Type())
	}
	return nil
}

// ---------------------------------------------------------------- decode

// Unmarshal decodes the Hessian 2.0 value in data into v, a non-nil
// pointer. The stream is checked first (lengths against its size,
// nesting, references); the decoded graph is then converted into v's
// type within a budget proportional to the input, so a stream whose
// references fan out or loop cannot make Unmarshal run away.
func (c *Codec) Unmarshal(data []byte, v any) (err error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return spi.Errorf(spi.InvalidArgument, "hessian: decoding needs a non-nil pointer, got %T", v)
	}
	if err := scan(data, c.maxDepth); err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "hessian: decoding into %T: %v", v, err)
	}
	if err := prepare(rv.Type().Elem()); err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "hessian: decoding into %T: %v", v, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = spi.Errorf(spi.InvalidArgument, "hessian: decoding into %T: malformed value (%v)", v, r)
		}
	}()
	// The decoder reads through a bufio.Reader over data; sized to the
	// body (16–4096 bytes) it costs no 4 KiB buffer per small body.
	obj, err := hessian.NewDecoderSize(data, max(16, min(len(data), 4096))).Decode()
	if err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "hessian: decoding into %T: %v", v, err)
	}
	a := &assigner{budget: 64 + 16*len(data), memo: map[uintptr]reflect.Value{}}
	if err := a.assign(rv.Elem(), reflect.ValueOf(obj), 0, c.maxDepth); err != nil {
		return spi.WrapError(spi.InvalidArgument, err, "hessian: decoding into %T: %v", v, err)
	}
	return nil
}

// errBudget is a decoded graph that expands beyond what its input can
// hold as a tree: references shared many times over, or a cycle.
var errBudget = errors.New("the value's references expand beyond the input's size (a reference cycle or a fan-out bomb)")

// assigner converts the decoder's values into the target's Go types.
type assigner struct {
	budget int
	memo   map[uintptr]reflect.Value // decoded *struct -> converted pointer (keeps typed cycles)
}

func (a *assigner) assign(dst, src reflect.Value, depth, max int) error {
	a.budget--
	if a.budget < 0 {
		return errBudget
	}
	if depth > max {
		return fmt.Errorf("nesting deeper than %d", max)
	}
	for src.IsValid() && src.Kind() == reflect.Interface {
		if src.IsNil() {
			src = reflect.Value{}
			break
		}
		src = src.Elem()
	}
	if !src.IsValid() {
		dst.SetZero()
		return nil
	}
	dt := dst.Type()
	st := src.Type()
	// Values the decoder built in the target's own types: typed objects
	// (bound classes) and typed arrays.
	if st == dt && dt.Kind() != reflect.Interface && !containsAny(dt) {
		dst.Set(src)
		return nil
	}
	switch dt.Kind() {
	case reflect.Interface:
		g, err := a.generic(src, depth, max)
		if err != nil {
			return err
		}
		if !g.IsValid() {
			dst.SetZero()
			return nil
		}
		if !g.Type().AssignableTo(dt) {
			return fmt.Errorf("a %v does not fit %v", g.Type(), dt)
		}
		dst.Set(g)
		return nil
	case reflect.Pointer:
		if src.Kind() == reflect.Pointer {
			if src.IsNil() {
				dst.SetZero()
				return nil
			}
			if m, ok := a.memo[src.Pointer()]; ok && m.Type() == dt {
				dst.Set(m)
				return nil
			}
		}
		p := reflect.New(dt.Elem())
		if src.Kind() == reflect.Pointer {
			a.memo[src.Pointer()] = p
			src = src.Elem()
		}
		if err := a.assign(p.Elem(), src, depth, max); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	}
	if src.Kind() == reflect.Pointer {
		if src.IsNil() {
			dst.SetZero()
			return nil
		}
		return a.assign(dst, src.Elem(), depth, max)
	}
	switch dt.Kind() {
	case reflect.Bool:
		if src.Kind() == reflect.Bool {
			dst.SetBool(src.Bool())
			return nil
		}
	case reflect.String:
		if src.Kind() == reflect.String {
			dst.SetString(src.String())
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i, ok := asInt(src); ok {
			if dst.OverflowInt(i) {
				return fmt.Errorf("%d overflows %v", i, dt)
			}
			dst.SetInt(i)
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if i, ok := asInt(src); ok {
			if i < 0 || dst.OverflowUint(uint64(i)) {
				return fmt.Errorf("%d overflows %v", i, dt)
			}
			dst.SetUint(uint64(i))
			return nil
		}
	case reflect.Float32, reflect.Float64:
		switch src.Kind() {
		case reflect.Float32, reflect.Float64:
			dst.SetFloat(src.Float())
			return nil
		}
		if i, ok := asInt(src); ok {
			dst.SetFloat(float64(i))
			return nil
		}
	case reflect.Slice:
		if dt.Elem().Kind() == reflect.Uint8 && src.Kind() == reflect.Slice && st.Elem().Kind() == reflect.Uint8 {
			dst.SetBytes(append([]byte(nil), src.Bytes()...))
			return nil
		}
		if src.Kind() == reflect.Slice || src.Kind() == reflect.Array {
			n := src.Len()
			if n > a.budget {
				return errBudget
			}
			out := reflect.MakeSlice(dt, n, n)
			for i := range n {
				if err := a.assign(out.Index(i), src.Index(i), depth+1, max); err != nil {
					return fmt.Errorf("[%d]: %w", i, err)
				}
			}
			dst.Set(out)
			return nil
		}
	case reflect.Array:
		if src.Kind() == reflect.Slice || src.Kind() == reflect.Array {
			if src.Len() != dt.Len() {
				return fmt.Errorf("a list of %d does not fit %v", src.Len(), dt)
			}
			for i := range src.Len() {
				if err := a.assign(dst.Index(i), src.Index(i), depth+1, max); err != nil {
					return fmt.Errorf("[%d]: %w", i, err)
				}
			}
			return nil
		}
	case reflect.Map:
		if src.Kind() == reflect.Map {
			out := reflect.MakeMapWithSize(dt, src.Len())
			it := src.MapRange()
			for it.Next() {
				k := reflect.New(dt.Key()).Elem()
				if err := a.assign(k, it.Key(), depth+1, max); err != nil {
					return fmt.Errorf("map key: %w", err)
				}
				e := reflect.New(dt.Elem()).Elem()
				if err := a.assign(e, it.Value(), depth+1, max); err != nil {
					return fmt.Errorf("[%v]: %w", k, err)
				}
				out.SetMapIndex(k, e)
			}
			dst.Set(out)
			return nil
		}
	case reflect.Struct:
		if dt == timeType {
			break
		}
		if src.Kind() == reflect.Struct && st.ConvertibleTo(dt) {
			dst.Set(src.Convert(dt))
			return nil
		}
		if src.Kind() == reflect.Map && st.Key().Kind() == reflect.String {
			// An object of a class bound to no Go type (a map with its
			// class under ClassKey) or a plain map: fields by name.
			for i := range dt.NumField() {
				f := dt.Field(i)
				name := fieldName(f)
				if name == "" {
					continue
				}
				fv := src.MapIndex(reflect.ValueOf(name).Convert(st.Key()))
				if !fv.IsValid() {
					continue
				}
				if err := a.assign(dst.Field(i), fv, depth+1, max); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("a Hessian %v does not fit Go %v", st, dt)
}

// fieldName is the Hessian name of a struct field ("" for skipped ones):
// its hessian tag, else its name with a lower-case first letter, as the
// Hessian library and Java beans name them.
func fieldName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	if tag, ok := f.Tag.Lookup("hessian"); ok {
		if tag == "-" {
			return ""
		}
		return tag
	}
	b := []byte(f.Name)
	if b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

func asInt(v reflect.Value) (int64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Uint() > math.MaxInt64 {
			return 0, false
		}
		return int64(v.Uint()), true
	}
	return 0, false
}

// containsAny reports whether values of t can hold interface values,
// which must go through generic (maps with non-string keys and refs).
func containsAny(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return containsAny(t.Elem())
	case reflect.Map:
		return containsAny(t.Key()) || containsAny(t.Elem())
	}
	return false // structs: the decoder built them field by field
}

// generic converts a decoded value for an interface target: maps with
// string keys become map[string]any, lists []any, recursively; typed
// values (bound structs, typed arrays, scalars) stay as decoded.
func (a *assigner) generic(src reflect.Value, depth, max int) (reflect.Value, error) {
	a.budget--
	if a.budget < 0 {
		return reflect.Value{}, errBudget
	}
	if depth > max {
		return reflect.Value{}, fmt.Errorf("nesting deeper than %d", max)
	}
	for src.IsValid() && src.Kind() == reflect.Interface {
		if src.IsNil() {
			return reflect.Value{}, nil
		}
		src = src.Elem()
	}
	if !src.IsValid() {
		return src, nil
	}
	switch src.Kind() {
	case reflect.Map:
		stringKeys := true
		for _, k := range src.MapKeys() {
			if k.Kind() == reflect.Interface {
				k = k.Elem()
			}
			if k.Kind() != reflect.String {
				stringKeys = false
				break
			}
		}
		if stringKeys {
			out := make(map[string]any, src.Len())
			it := src.MapRange()
			for it.Next() {
				k := it.Key()
				if k.Kind() == reflect.Interface {
					k = k.Elem()
				}
				e, err := a.generic(it.Value(), depth+1, max)
				if err != nil {
					return reflect.Value{}, err
				}
				out[k.String()] = valueOrNil(e)
			}
			return reflect.ValueOf(out), nil
		}
		out := make(map[any]any, src.Len())
		it := src.MapRange()
		for it.Next() {
			k, err := a.generic(it.Key(), depth+1, max)
			if err != nil {
				return reflect.Value{}, err
			}
			if k.IsValid() && !k.Type().Comparable() {
				return reflect.Value{}, fmt.Errorf("a map key of type %v", k.Type())
			}
			e, err := a.generic(it.Value(), depth+1, max)
			if err != nil {
				return reflect.Value{}, err
			}
			out[valueOrNil(k)] = valueOrNil(e)
		}
		return reflect.ValueOf(out), nil
	case reflect.Slice:
		if src.Type().Elem().Kind() == reflect.Uint8 {
			return reflect.ValueOf(append([]byte(nil), src.Bytes()...)), nil
		}
		if src.Type().Elem().Kind() != reflect.Interface {
			return src, nil // a typed array, built by the decoder
		}
		n := src.Len()
		if n > a.budget {
			return reflect.Value{}, errBudget
		}
		out := make([]any, n)
		for i := range n {
			e, err := a.generic(src.Index(i), depth+1, max)
			if err != nil {
				return reflect.Value{}, err
			}
			out[i] = valueOrNil(e)
		}
		return reflect.ValueOf(out), nil
	}
	return src, nil
}

func valueOrNil(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	return v.Interface()
}
