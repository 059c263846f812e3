package validatefilter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	validatefilter "github.com/kiterpc/kite/plugins/filter-validate"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Address struct {
	Street string `json:"street" validate:"required"`
	Zip    string `json:"zip" validate:"required,len=5,numeric"`
}

type Item struct {
	SKU string `json:"sku" validate:"required,alphanum"`
	Qty int    `json:"qty" validate:"min=1,max=100"`
}

type CreateUser struct {
	Name    string   `json:"name" validate:"required,max=20"`
	Email   string   `json:"email" validate:"required,email"`
	Age     int      `json:"age" validate:"gte=18"`
	Role    string   `json:"role" validate:"oneof=admin user"`
	Address *Address `json:"address" validate:"required"`
	Items   []Item   `json:"items" validate:"max=3,dive"`
	Secret  string   `json:"-" validate:"required"`
}

func validUser() *CreateUser {
	return &CreateUser{Name: "ada", Email: "ada@example.com", Age: 36, Role: "admin",
		Address: &Address{Street: "1 Loop Rd", Zip: "12345"}, Items: []Item{{SKU: "A1", Qty: 2}}, Secret: "s3cret-value"}
}

func newFilter(t *testing.T, o validatefilter.Options) *validatefilter.Filter {
	t.Helper()
	f, err := validatefilter.NewFilter(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// run sends req through the filter on side and reports whether the
// handler ran and the error.
func run(f spi.Filter, side spi.Side, method string, req any) (bool, error) {
	ran := false
	err := f.Wrap(func(context.Context, *spi.Call) error { ran = true; return nil })(context.Background(),
		&spi.Call{Side: side, Method: method, Request: req, Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}})
	return ran, err
}

func TestStructTags(t *testing.T) {
	f := newFilter(t, validatefilter.Options{})
	if ran, err := run(f, spi.ServerSide, "Users.Create", validUser()); err != nil || !ran {
		t.Fatalf("a valid request: ran %v, err %v", ran, err)
	}

	bad := validUser()
	bad.Email = "not-an-email"
	bad.Age = 12
	bad.Address.Zip = "12a"
	bad.Items = append(bad.Items, Item{SKU: "B-2", Qty: 0})
	bad.Secret = ""
	ran, err := run(f, spi.ServerSide, "Users.Create", bad)
	if ran {
		t.Fatal("the handler ran for an invalid request")
	}
	var se *spi.Error
	if !errors.As(err, &se) || se.Code != spi.InvalidArgument {
		t.Fatalf("got %v, want an InvalidArgument *spi.Error", err)
	}
	got := map[string]string{}
	for _, v := range validatefilter.Violations(err) {
		got[v.Field] = v.Description
	}
	want := map[string]string{
		"email":        "must be an email address",
		"age":          "must be at least 18",
		"address.zip":  `must have length 5`,
		"items[1].sku": `must satisfy "alphanum"`,
		"items[1].qty": "must be at least 1",
		"Secret":       "is required", // json:"-": the Go name
	}
	if len(got) != len(want) {
		t.Errorf("violations %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("violation of %q = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if !strings.HasPrefix(se.Message, "invalid request to Users.Create: ") || !strings.Contains(se.Message, "address.zip: must have length 5") {
		t.Errorf("message %q", se.Message)
	}
	if strings.Contains(se.Message, "not-an-email") || strings.Contains(se.Message, "12a") {
		t.Errorf("the message quotes request values: %q", se.Message)
	}

	// A missing nested struct and a too-long list.
	bad = validUser()
	bad.Address = nil
	bad.Items = make([]Item, 4)
	for i := range bad.Items {
		bad.Items[i] = Item{SKU: "X", Qty: 1}
	}
	_, err = run(f, spi.ServerSide, "Users.Create", bad)
	vs := validatefilter.Violations(err)
	if len(vs) != 2 || vs[0] != (validatefilter.Violation{Field: "address", Description: "is required"}) ||
		vs[1] != (validatefilter.Violation{Field: "items", Description: "must have at most 3 elements/characters"}) {
		t.Fatalf("violations %+v", vs)
	}
}

func TestGoNamesAndOtherTag(t *testing.T) {
	type req struct {
		Count int `json:"count" check:"max=2"`
	}
	f := newFilter(t, validatefilter.Options{Tag: "check", NameTag: "-"})
	_, err := run(f, spi.ServerSide, "S.M", &req{Count: 3})
	if vs := validatefilter.Violations(err); len(vs) != 1 || vs[0].Field != "Count" {
		t.Fatalf("got %v (%+v)", err, vs)
	}
}

// Messages that validate themselves, as protoc-gen-validate generates
// them: an error per field with Field/Reason, nested messages through
// Cause, ValidateAll returning a multi-error.

type fieldError struct {
	field, reason string
	cause         error
}

func (e fieldError) Field() string  { return e.field }
func (e fieldError) Reason() string { return e.reason }
func (e fieldError) Cause() error   { return e.cause }
func (e fieldError) Error() string  { return fmt.Sprintf("invalid %s: %s", e.field, e.reason) }

type multiError []error

func (m multiError) Error() string      { return fmt.Sprintf("%d errors", len(m)) }
func (m multiError) AllErrors() []error { return m }

type pgvMessage struct{ errs []error }

func (m *pgvMessage) Validate() error {
	if len(m.errs) == 0 {
		return nil
	}
	return m.errs[0]
}

func (m *pgvMessage) ValidateAll() error {
	if len(m.errs) == 0 {
		return nil
	}
	return multiError(m.errs)
}

type selfChecked struct{ ok bool }

func (s selfChecked) Validate() error {
	if s.ok {
		return nil
	}
	return errors.New("start must come before end")
}

func TestValidateMethod(t *testing.T) {
	f := newFilter(t, validatefilter.Options{})
	if ran, err := run(f, spi.ServerSide, "S.M", &pgvMessage{}); !ran || err != nil {
		t.Fatalf("valid message: ran %v err %v", ran, err)
	}
	msg := &pgvMessage{errs: []error{
		fieldError{field: "Email", reason: "value must be a valid email address"},
		fieldError{field: "Address", reason: "embedded message failed validation",
			cause: fieldError{field: "Zip", reason: "value length must be 5 runes"}},
		fieldError{field: "Items[2]", reason: "embedded message failed validation",
			cause: fieldError{field: "Sku", reason: "value is required"}},
	}}
	ran, err := run(f, spi.ServerSide, "S.M", msg)
	if ran || spi.CodeOf(err) != spi.InvalidArgument {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	want := []validatefilter.Violation{
		{"Address.Zip", "value length must be 5 runes"},
		{"Email", "value must be a valid email address"},
		{"Items[2].Sku", "value is required"},
	}
	if got := validatefilter.Violations(err); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("violations (ValidateAll preferred)\n got %+v\nwant %+v", got, want)
	}

	_, err = run(f, spi.ServerSide, "S.M", selfChecked{})
	vs := validatefilter.Violations(err)
	if spi.CodeOf(err) != spi.InvalidArgument || len(vs) != 1 || vs[0].Field != "" || vs[0].Description != "start must come before end" {
		t.Fatalf("plain Validate error: %v %+v", err, vs)
	}
	if ran, err := run(f, spi.ServerSide, "S.M", selfChecked{ok: true}); !ran || err != nil {
		t.Fatalf("ran %v err %v", ran, err)
	}
}

func TestSidesAndSkips(t *testing.T) {
	bad := &CreateUser{}
	f := newFilter(t, validatefilter.Options{SkipMethods: []string{"Health.*", "Users.Import"}})
	for _, c := range []struct {
		side   spi.Side
		method string
		ran    bool
	}{
		{spi.ClientSide, "Users.Create", true}, // clients do not validate by default
		{spi.ServerSide, "Users.Create", false},
		{spi.ServerSide, "Users.Import", true},
		{spi.ServerSide, "Health.Check", true},
	} {
		if ran, _ := run(f, c.side, c.method, bad); ran != c.ran {
			t.Errorf("%v %s: handler ran %v, want %v", c.side, c.method, ran, c.ran)
		}
	}
	cf := newFilter(t, validatefilter.Options{Client: true})
	if ran, err := run(cf, spi.ClientSide, "Users.Create", bad); ran || spi.CodeOf(err) != spi.InvalidArgument {
		t.Fatalf("client = true: ran %v err %v", ran, err)
	}
	// Values with nothing to check pass: raw bytes, maps, nil, protobuf
	// messages without a Validate method.
	st, _ := structpb.NewStruct(map[string]any{"k": []any{"v", 1.0}})
	for _, v := range []any{[]byte("raw"), map[string]any{"a": 1}, nil, (*CreateUser)(nil), 42,
		wrapperspb.String(""), durationpb.New(-time.Second), st} {
		if ran, err := run(f, spi.ServerSide, "S.M", v); !ran || err != nil {
			t.Errorf("%T: ran %v err %v", v, ran, err)
		}
	}
	if _, err := validatefilter.NewFilter(validatefilter.Options{SkipMethods: []string{"Svc*"}}); err == nil {
		t.Error("a bad pattern was accepted")
	}
}

func TestBadRuleIsInternal(t *testing.T) {
	type req struct {
		N int `validate:"no_such_rule"` // the validator panics on an unknown rule
	}
	f := newFilter(t, validatefilter.Options{})
	ran, err := run(f, spi.ServerSide, "S.M", &req{N: 1})
	if ran || spi.CodeOf(err) != spi.Internal || !strings.Contains(err.Error(), "do not apply") {
		t.Fatalf("ran %v err %v; want Internal naming the rules", ran, err)
	}
}

func TestRegistered(t *testing.T) {
	v, err := spi.Default.Build(spi.KindFilter, "validate", spi.Config(`{"client":true,"skip_methods":["Health.*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ran, err := run(v.(spi.Filter), spi.ClientSide, "Users.Create", &CreateUser{}); ran || spi.CodeOf(err) != spi.InvalidArgument {
		t.Fatalf("built from config: ran %v err %v", ran, err)
	}
	if _, err := spi.Default.Build(spi.KindFilter, "validate", spi.Config(`{"clients":true}`)); err == nil {
		t.Error("an unknown setting was accepted")
	}
}

func TestConformance(t *testing.T) {
	f := newFilter(t, validatefilter.Options{Client: true})
	spitest.FilterSuite{
		Filter:     f,
		Reject:     func(call *spi.Call) { call.Request = &CreateUser{Email: "x"} },
		RejectCode: spi.InvalidArgument,
	}.Run(t)
}
