// Package hessiancodec is Kite's Hessian 2.0 codec (catalog name
// "hessian", wire id 4), for calls to and from Java services that speak
// Hessian (Dubbo, Caucho Hessian), on github.com/apache/dubbo-go-hessian2.
//
// Go values map to Hessian as the library maps them: bool, int8–int32 →
// int, int/int64/uint32 → long, float64 → double, string, []byte →
// binary, time.Time → date, slices → lists (a slice of a bound struct is
// a typed array), maps → maps, and structs → objects of a Java class.
// A struct type names its class in one of three ways:
//
//	type User struct {
//		_    struct{} `java:"com.example.User"` // a tagged blank field
//		Name string   `hessian:"name"`          // field names: hessian tag, else lowerCamelCase
//	}
//	func (Order) JavaClassName() string { return "com.example.Order" } // a method (dubbo-go's POJO)
//	hessiancodec.Register("com.example.Line", Line{})                  // or a registry
//
// Bindings are process-wide (the library keeps one registry); a Java
// class bound to two Go types, or a struct with no class, is an error.
// A Java object of a class no Go type is bound to decodes into a
// map[string]any holding its class name under ClassKey ("_class"), or
// into any struct whose field names match.
//
// Untrusted input: Unmarshal first walks the stream without building
// values (scan.go): every declared length (string, binary, list, class
// field count) must fit in the bytes left, nesting stays under max_depth
// (64), references must point backwards, and one value must fill the
// input. So a body cannot make the decoder allocate more than a small
// multiple of its size nor recurse without bound. The decoded graph is
// then converted into the target within a budget proportional to the
// input, so references that fan out (2^n leaves from n lists) or loop
// fail with a clear error instead of running away; a back-reference cycle
// into typed pointers (*User whose Friend is itself) is kept as a cycle.
// Marshal refuses values that contain themselves and excessive nesting:
// Hessian encoders (this library's included) recurse through them until
// the stack overflows, which no recover can catch. Errors are
// *spi.Error with code InvalidArgument.
//
// A map[string]any with a class name under ClassKey is encoded as an
// object of that class: that is how an out-of-process codec, which sees
// only the JSON form of values, writes Java objects.
//
// Interoperability with Caucho Hessian 4.0.38 on OpenJDK 17 is tested
// byte for byte in both directions (interop_test.go, testdata/java).
//
// The package registers itself in spi.Default from init.
package hessiancodec
