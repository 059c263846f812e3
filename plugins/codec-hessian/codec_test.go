package hessiancodec_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// User is bound to the Java class of testdata/java by a tagged blank
// field; fields carry their Java names in hessian tags.
type User struct {
	_       struct{}          `java:"kite.interop.User"`
	Name    string            `hessian:"name"`
	Age     int32             `hessian:"age"`
	ID      int64             `hessian:"id"`
	Score   float64           `hessian:"score"`
	Active  bool              `hessian:"active"`
	Tags    []string          `hessian:"tags"`
	Attrs   map[string]string `hessian:"attrs"`
	Avatar  []byte            `hessian:"avatar"`
	Friend  *User             `hessian:"friend"`
	Created time.Time         `hessian:"created"`
}

// Order names its class with a method, as dubbo-go types do.
type Order struct {
	SKU   string
	Qty   int64
	Price float64
	Lines []Line
}

func (Order) JavaClassName() string { return "kite.test.Order" }

// Line is bound with Register.
type Line struct {
	Note string
	N    int32
}

func init() {
	if err := hessiancodec.Register("kite.test.Line", Line{}); err != nil {
		panic(err)
	}
}

func TestConformance(t *testing.T) {
	c := hessiancodec.New()
	t.Run("User", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(User) },
			User{Name: "ann", Age: 3, ID: 1 << 50, Score: 1.5, Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"},
				Avatar: []byte{1, 2}, Friend: &User{Name: "bob", Tags: []string{}}, Active: true},
			&User{Name: "日本 \U0001F600", Age: -1})
	})
	t.Run("Order", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(Order) },
			Order{SKU: "X-1", Qty: 3, Price: 9.99, Lines: []Line{{Note: "gift", N: 1}, {Note: "", N: -7}}})
	})
	t.Run("Map", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(map[string]any) },
			map[string]any{"a": int64(1), "b": []any{"x", true, nil, 2.5}, "c": map[string]any{"d": "e"}, "bin": []byte{0, 255}})
	})
	t.Run("Scalars", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(int64) }, int64(0), int64(-1<<63), int64(1<<62))
		spitest.TestCodec(t, c, func() any { return new(string) }, "", "hello", string(make([]byte, 70000)))
	})
}

func TestRegistered(t *testing.T) {
	c, err := spi.Default.BuildCodec("hessian", spi.Config(`{"max_depth":8}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "hessian" || c.ID() != hessiancodec.ID {
		t.Fatalf("built %s/%d", c.Name(), c.ID())
	}
	for _, cfg := range []string{`{"depth":3}`, `{"max_depth":-1}`} {
		if _, err := spi.Default.BuildCodec("hessian", spi.Config(cfg)); err == nil {
			t.Errorf("%s was accepted", cfg)
		}
	}
}
