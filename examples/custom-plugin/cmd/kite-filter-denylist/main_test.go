package main

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDenylist(t *testing.T) {
	v, err := Entry.New(spi.Config(`{"methods":["Admin.*","User.Delete"],"callers":["batch-job"]}`))
	if err != nil {
		t.Fatal(err)
	}
	reached := 0
	invoke := spi.Chain(func(context.Context, *spi.Call) error { reached++; return nil }, v.(spi.Filter))
	call := func(method, caller string) error {
		m := &spi.Metadata{}
		if caller != "" {
			m.Set(spi.MetaCaller, caller)
		}
		return invoke(context.Background(), &spi.Call{Side: spi.ServerSide, Method: method, Meta: m, Trailer: &spi.Metadata{}})
	}
	for _, tc := range []struct {
		method, caller string
		denied         bool
	}{
		{"User.Get", "", false},
		{"User.Delete", "", true},
		{"Admin.Drop", "", true},
		{"Administrator.Get", "", false},
		{"User.Get", "batch-job", true},
		{"User.Get", "web", false},
	} {
		err := call(tc.method, tc.caller)
		if got := errors.Is(err, spi.ErrPermissionDenied); got != tc.denied {
			t.Errorf("%s from %q: err = %v, want denied=%v", tc.method, tc.caller, err, tc.denied)
		}
	}
	if reached != 3 {
		t.Errorf("handler reached %d times, want 3", reached)
	}
	if _, err := Entry.New(spi.Config(`{"methods":["nodot"]}`)); err == nil {
		t.Error("a malformed method was accepted")
	}
	if _, err := Entry.New(spi.Config(`{"unknown":1}`)); err == nil {
		t.Error("an unknown attribute was accepted")
	}
}
