package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
)

// The wording of the errors a newcomer meets first, checked exactly:
// each says what went wrong and what would have worked.

func TestUnknownMethodListsTheServicesMethods(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	var methods []string
	for _, m := range f.srv.Methods() {
		if svc, name, _ := strings.Cut(m, "."); svc == "Echo" {
			methods = append(methods, name)
		}
	}
	sort.Strings(methods)
	require.NotEmpty(t, methods)

	err := c.Call(context.Background(), "Echo.Nope", &EchoReq{}, &EchoResp{})
	var e *spi.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, spi.Unimplemented, e.Code)
	want := fmt.Sprintf(`unknown method "Echo.Nope": service Echo has %s`, strings.Join(methods, ", "))
	if len(methods) > 16 {
		want = fmt.Sprintf(`unknown method "Echo.Nope": service Echo has %s and %d more`, strings.Join(methods[:16], ", "), len(methods)-16)
	}
	require.Equal(t, want, e.Message)

	err = c.Call(context.Background(), "Nosuch.Method", &EchoReq{}, &EchoResp{})
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, `unknown method "Nosuch.Method" (want Service.Method): this server has services Echo`, e.Message)
}

func TestDecodingErrorSaysWhatShapeWasExpected(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	// The server's EchoReq.Text is a string; send a number.
	bad := struct {
		Text int `json:"text"`
	}{5}
	body, _ := json.Marshal(bad)
	var te *json.UnmarshalTypeError
	require.ErrorAs(t, json.Unmarshal(body, &EchoReq{}), &te)

	err := c.Call(context.Background(), "Echo.Echo", &bad, &EchoResp{})
	var e *spi.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, spi.InvalidArgument, e.Code)
	require.Equal(t, fmt.Sprintf(`decoding json body: field "text": want a string, got JSON number (at byte %d)`, te.Offset), e.Message)

	// Not JSON at all.
	err = c.Call(context.Background(), "Echo.Echo", json.RawMessage(`{"text": "a"`), &EchoResp{})
	require.Error(t, err)
}

func TestDeadlineTooShortToSendSaysSo(t *testing.T) {
	f := startServer(t, ServerOptions{}, "")
	c := newClient(t, ClientOptions{Targets: []string{f.addr}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := c.Call(ctx, "Echo.Echo", &EchoReq{Text: "x"}, &EchoResp{})
	var e *spi.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, spi.DeadlineExceeded, e.Code)
	require.True(t, strings.HasPrefix(e.Message, "the deadline expired before the call was sent ("), e.Message)

	// The same instance answers a call with time to spare: it was the
	// deadline, not the server.
	require.NoError(t, c.Call(context.Background(), "Echo.Echo", &EchoReq{Text: "x"}, &EchoResp{}))
}
