package kite_test

import (
	"errors"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/kiterpc/kite"
)

// TestOneSentinelPerCode checks that kite exports a sentinel for every
// status code but OK, and that each matches exactly the errors of its code.
func TestOneSentinelPerCode(t *testing.T) {
	sentinels := map[kite.Code]error{
		kite.Canceled: kite.ErrCanceled, kite.Unknown: kite.ErrUnknown,
		kite.InvalidArgument: kite.ErrInvalidArgument, kite.DeadlineExceeded: kite.ErrDeadlineExceeded,
		kite.NotFound: kite.ErrNotFound, kite.AlreadyExists: kite.ErrAlreadyExists,
		kite.PermissionDenied: kite.ErrPermissionDenied, kite.ResourceExhausted: kite.ErrResourceExhausted,
		kite.FailedPrecondition: kite.ErrFailedPrecondition, kite.Aborted: kite.ErrAborted,
		kite.OutOfRange: kite.ErrOutOfRange, kite.Unimplemented: kite.ErrUnimplemented,
		kite.Internal: kite.ErrInternal, kite.Unavailable: kite.ErrUnavailable,
		kite.DataLoss: kite.ErrDataLoss, kite.Unauthenticated: kite.ErrUnauthenticated,
	}
	for c := kite.Canceled; c <= kite.Unauthenticated; c++ {
		s, ok := sentinels[c]
		if !ok || s == nil {
			t.Errorf("no sentinel for %v", c)
			continue
		}
		err := kite.Errorf(c, "some %v", c)
		for c2, s2 := range sentinels {
			if got := errors.Is(err, s2); got != (c2 == c) {
				t.Errorf("errors.Is(%v error, Err%v) = %v", c, c2, got)
			}
		}
	}
	if len(sentinels) != int(kite.Unauthenticated) {
		t.Errorf("%d sentinels for %d codes", len(sentinels), kite.Unauthenticated)
	}
}

// TestExampleImportsOnlyKite keeps the package example honest about the
// facade: a server and a client with retry, breaker and logger settings
// written with nothing but kite and the standard library.
func TestExampleImportsOnlyKite(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "example_test.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if path != "github.com/kiterpc/kite" && strings.Contains(path, ".") {
			t.Errorf("example_test.go imports %s: the facade should name what it needs", path)
		}
	}
}

// TestListenWithoutTransport serves with Listen(ctx, addr), no positional
// nil, and refuses two transports.
func TestListenWithoutTransport(t *testing.T) {
	srv, err := kite.NewServer(kite.ServerOptions{Logger: kite.NullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := srv.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().Network() != "tcp" {
		t.Errorf("listening on %s, want tcp", ln.Addr().Network())
	}
	if _, err := srv.Listen(t.Context(), "127.0.0.1:0", nil, nil); kite.CodeOf(err) != kite.InvalidArgument {
		t.Errorf("two transports: %v, want InvalidArgument", err)
	}
}
