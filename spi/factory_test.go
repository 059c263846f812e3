package spi_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type thing struct{ Size int }

type thingConfig struct {
	Size int `json:"size"`
}

func newThing(c thingConfig) (*thing, error) {
	if c.Size < 0 {
		return nil, errors.New("size must not be negative")
	}
	return &thing{Size: c.Size}, nil
}

func TestFactoryOf(t *testing.T) {
	f := spi.FactoryOf(newThing)

	v, err := f(spi.Config(`{"size": 3}`))
	if err != nil || v.(*thing).Size != 3 {
		t.Fatalf("got %#v, %v; want a thing of size 3", v, err)
	}
	if v, err := f(nil); err != nil || v.(*thing).Size != 0 {
		t.Fatalf("empty block: got %#v, %v; want a thing of size 0", v, err)
	}
	if _, err := f(spi.Config(`{"sise": 3}`)); err == nil || !strings.Contains(err.Error(), "sise") {
		t.Fatalf("unknown attribute: got %v, want an error naming it", err)
	}
	v, err = f(spi.Config(`{"size": -1}`))
	if err == nil || v != nil {
		t.Fatalf("failed build: got %#v, %v; want an untyped nil and the error", v, err)
	}

	none := spi.FactoryOf(func(struct{}) (*thing, error) { return &thing{}, nil })
	if _, err := none(spi.Config(`{"size": 1}`)); err == nil {
		t.Fatal("a plugin without settings accepted an attribute")
	}
}
