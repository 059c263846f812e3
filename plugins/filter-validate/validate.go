package validatefilter

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/go-playground/validator/v10"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	"github.com/kiterpc/kite/spi"
)

// Name is the filter's catalog name.
const Name = "validate"

// Validator is the method convention for messages that check themselves:
// protoc-gen-validate generates it for protobuf messages, and any request
// type may implement it. A message that also has ValidateAll() error
// (protoc-gen-validate's "all violations" form) is checked with that.
type Validator interface{ Validate() error }

type allValidator interface{ ValidateAll() error }

// Violation is one field that failed validation: the field's path in the
// request ("address.zip", "items[2].sku") and what is wrong with it.
type Violation struct {
	Field       string
	Description string
}

// Options configure a Filter built in code.
type Options struct {
	// Client also validates the requests a client sends, so a bad request
	// fails before it leaves the process. The server side always
	// validates.
	Client bool
	// SkipMethods are methods whose requests are not validated:
	// "Svc.Method", "Svc.*" or "*".
	SkipMethods []string
	// Tag is the struct tag holding validator rules; "validate" when
	// empty.
	Tag string
	// NameTag is the struct tag whose first element names a field in the
	// paths reported ("json" when empty, so paths use wire names); "-"
	// reports Go field names.
	NameTag string
}

// Filter validates requests before the handler runs (and, with
// Options.Client, before a client sends them). Build it with NewFilter.
type Filter struct {
	client bool
	skip   []string
	v      *validator.Validate
}

// NewFilter builds a filter from o.
func NewFilter(o Options) (*Filter, error) {
	for _, p := range o.SkipMethods {
		if p == "" || (strings.Contains(p, "*") && p != "*" && (!strings.HasSuffix(p, ".*") || strings.Count(p, "*") > 1)) {
			return nil, fmt.Errorf("skip_methods: pattern %q: use \"Svc.Method\", \"Svc.*\" or \"*\"", p)
		}
	}
	v := validator.New(validator.WithRequiredStructEnabled())
	if o.Tag != "" {
		v.SetTagName(o.Tag)
	}
	nameTag := o.NameTag
	if nameTag == "" {
		nameTag = "json"
	}
	if nameTag != "-" {
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get(nameTag), ",")
			switch name {
			case "-":
				return ""
			case "":
				return f.Name
			}
			return name
		})
	}
	return &Filter{client: o.Client, skip: append([]string(nil), o.SkipMethods...), v: v}, nil
}

func (f *Filter) skipped(method string) bool {
	for _, p := range f.skip {
		switch {
		case p == "*", p == method:
			return true
		case strings.HasSuffix(p, ".*") && strings.HasPrefix(method, p[:len(p)-1]):
			return true
		}
	}
	return false
}

// Wrap implements spi.Filter.
func (f *Filter) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if call.Request == nil || (call.Side == spi.ClientSide && !f.client) || f.skipped(call.Method) {
			return next(ctx, call)
		}
		if err := f.Check(call.Method, call.Request); err != nil {
			return err
		}
		return next(ctx, call)
	}
}

// Check validates req as the filter does for a call of method: nil, or an
// *spi.Error with code InvalidArgument whose Details are a protobuf
// google.rpc.BadRequest listing each failing field (see Violations).
func (f *Filter) Check(method string, req any) (err error) {
	defer func() {
		// The validator panics on a rule that does not fit its field's
		// type (or is unknown): a mistake in the request type, not in
		// the request, so Internal.
		if r := recover(); r != nil {
			err = spi.Errorf(spi.Internal, "validate: the rules of %T do not apply: %v", req, r)
		}
	}()
	var vs []Violation
	var cause error
	switch m := req.(type) {
	case allValidator:
		cause = m.ValidateAll()
		vs = fromMethodError(cause)
	case Validator:
		cause = m.Validate()
		vs = fromMethodError(cause)
	default:
		vs, cause = f.structViolations(req)
		if cause != nil && vs == nil {
			// Not a violation: the validator cannot run on this value
			// (a rule that does not fit its field's type, for one).
			return spi.WrapError(spi.Internal, cause, "validate: checking the request of %s: %v", method, cause)
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return violationError(method, vs, cause)
}

// structViolations runs the struct-tag rules on req when it is a struct
// or a pointer to one.
func (f *Filter) structViolations(req any) ([]Violation, error) {
	rv := reflect.ValueOf(req)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, nil // raw bytes, maps, scalars: nothing to check
	}
	err := f.v.Struct(req)
	if err == nil {
		return nil, nil
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return nil, err
	}
	vs := make([]Violation, 0, len(ves))
	for _, fe := range ves {
		vs = append(vs, Violation{Field: fieldPath(fe.Namespace()), Description: describe(fe)})
	}
	return vs, err
}

// fieldPath drops the request type's name from a validator namespace
// ("CreateUser.address.zip" -> "address.zip").
func fieldPath(ns string) string {
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return ns
}

// describe says what a rule wants, without quoting the value (which may
// be a secret).
func describe(fe validator.FieldError) string {
	tag, param := fe.Tag(), fe.Param()
	switch tag {
	case "required":
		return "is required"
	case "min", "gte":
		if isSized(fe.Kind()) {
			return "must have at least " + param + " elements/characters"
		}
		return "must be at least " + param
	case "max", "lte":
		if isSized(fe.Kind()) {
			return "must have at most " + param + " elements/characters"
		}
		return "must be at most " + param
	case "gt":
		return "must be greater than " + param
	case "lt":
		return "must be less than " + param
	case "len":
		return "must have length " + param
	case "oneof":
		return "must be one of [" + param + "]"
	case "email":
		return "must be an email address"
	}
	if param != "" {
		return fmt.Sprintf("must satisfy %q", tag+"="+param)
	}
	return fmt.Sprintf("must satisfy %q", tag)
}

func isSized(k reflect.Kind) bool {
	return k == reflect.String || k == reflect.Slice || k == reflect.Map || k == reflect.Array
}

// pgvError is the error protoc-gen-validate generates per message:
// Field names the failing field, Cause is the nested message's error.
type pgvError interface {
	Field() string
	Reason() string
}

type causer interface{ Cause() error }

type multiError interface{ AllErrors() []error }

// fromMethodError turns a Validate()/ValidateAll() error into violations:
// protoc-gen-validate's errors give field paths (nested messages through
// their Cause chain); any other error is one violation of the whole
// request (field "").
func fromMethodError(err error) []Violation {
	if err == nil {
		return nil
	}
	var out []Violation
	if me, ok := err.(multiError); ok {
		for _, e := range me.AllErrors() {
			out = append(out, fromMethodError(e)...)
		}
		if len(out) > 0 {
			return out
		}
	}
	var pe pgvError
	if errors.As(err, &pe) {
		path, reason := pe.Field(), pe.Reason()
		if c, ok := pe.(causer); ok && c.Cause() != nil {
			if nested := fromMethodError(c.Cause()); len(nested) > 0 {
				for _, v := range nested {
					out = append(out, Violation{Field: joinPath(path, v.Field), Description: joinReason(reason, v.Description)})
				}
				return out
			}
		}
		return []Violation{{Field: path, Description: reason}}
	}
	return []Violation{{Description: err.Error()}}
}

func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

// joinReason keeps the innermost reason: protoc-gen-validate's outer
// reason for a nested message is only "embedded message failed
// validation".
func joinReason(outer, inner string) string {
	if inner != "" {
		return inner
	}
	return outer
}

// violationError is the InvalidArgument error for vs: the message lists
// the fields, the details are a google.rpc.BadRequest (the gRPC
// convention for INVALID_ARGUMENT), so any gRPC client library reads them.
func violationError(method string, vs []Violation, cause error) *spi.Error {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Field < vs[j].Field })
	br := &errdetails.BadRequest{}
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		if v.Field == "" {
			parts = append(parts, v.Description)
		} else {
			parts = append(parts, v.Field+": "+v.Description)
		}
	}
	e := spi.WrapError(spi.InvalidArgument, cause, "invalid request to %s: %s", method, strings.Join(parts, "; "))
	e.Details, _ = proto.Marshal(br) // a BadRequest of strings always marshals
	return e
}

// Violations returns the field violations an InvalidArgument error from
// this filter carries in its details (after crossing the wire too), or
// nil when err has none.
func Violations(err error) []Violation {
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.InvalidArgument || len(se.Details) == 0 {
		return nil
	}
	var br errdetails.BadRequest
	if proto.Unmarshal(se.Details, &br) != nil {
		return nil
	}
	out := make([]Violation, 0, len(br.FieldViolations))
	for _, fv := range br.FieldViolations {
		out = append(out, Violation{Field: fv.GetField(), Description: fv.GetDescription()})
	}
	return out
}

type config struct {
	Client      bool     `json:"client"`
	SkipMethods []string `json:"skip_methods"`
	Tag         string   `json:"tag"`
	NameTag     string   `json:"name_tag"`
}

// New builds the filter from its kite.hcl block.
func New(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	return NewFilter(Options(c))
}

func init() {
	spi.Register(spi.Entry{
		Kind: spi.KindFilter, Name: Name, Version: "1.0.0",
		Doc: "request validation (struct tags, Validate() error); failures are InvalidArgument with field paths",
		Schema: spi.Schema{
			{Name: "client", Type: spi.TypeBool, Doc: "also validate requests a client sends (default false: server side only)"},
			{Name: "skip_methods", Type: spi.TypeStringList, Doc: `methods not validated: "Svc.Method", "Svc.*", "*"`},
			{Name: "tag", Type: spi.TypeString, Doc: `struct tag holding the rules (default "validate")`},
			{Name: "name_tag", Type: spi.TypeString, Doc: `struct tag naming fields in reported paths (default "json"; "-" for Go names)`},
		},
		New: New,
	})
}
