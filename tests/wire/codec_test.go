package wire

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/core/protocol"
	"github.com/kiterpc/kite/internal/testpb"
	jsoncodec "github.com/kiterpc/kite/plugins/codec-json"
	protocodec "github.com/kiterpc/kite/plugins/codec-proto"
	"github.com/kiterpc/kite/spi"
)

// plain is a Go struct: not a protobuf message.
type plain struct {
	Name string `json:"name"`
	N    int64  `json:"n"`
}

type kindsSvc struct{}

func (kindsSvc) Echo(_ context.Context, in *testpb.Kinds) (*testpb.Kinds, error) { return in, nil }
func (kindsSvc) Plain(_ context.Context, in *plain) (*plain, error)              { return in, nil }
func (kindsSvc) Mixed(_ context.Context, in *testpb.Kinds) (*plain, error) {
	return &plain{Name: in.GetText(), N: in.GetId()}, nil
}
func (kindsSvc) Chat(_ context.Context, st *core.Stream) error {
	for {
		var m testpb.Kinds
		if err := st.Recv(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := st.Send(&m); err != nil {
			return err
		}
	}
}

func fullKinds() *testpb.Kinds {
	return &testpb.Kinds{
		Id: 9007199254740993, Big: 1<<64 - 1, Color: testpb.Color_COLOR_RED,
		At:     timestamppb.New(time.Date(2026, 12, 4, 5, 6, 7, 8, time.UTC)),
		Counts: map[string]int64{"a": 1 << 62}, Points: map[int32]*testpb.Point{3: {X: 1}},
		Path: []*testpb.Point{{Y: 2}}, Choice: &testpb.Kinds_Point{Point: &testpb.Point{X: 9}},
	}
}

// codecsOf returns the codec ids of the request and response frames seen.
func codecsOf(frames []seen) (req, resp []uint8) {
	for _, f := range frames {
		switch {
		case f.dir == "c2s" && f.typ == protocol.TypeRequest:
			req = append(req, f.codec)
		case f.dir == "s2c" && f.typ == protocol.TypeResponse:
			resp = append(resp, f.codec)
		}
	}
	return req, resp
}

// TestAutoCodecOnTheWire: a client with no codec configured (the default,
// "auto") sends a call whose request and response are protobuf messages
// as protobuf, any other as JSON, and the server answers each in kind; a
// JSON client calls the same protobuf method with protojson, oneof,
// enum, 64-bit integers, Timestamp and maps intact; auto streams carry
// auto's own id.
func TestAutoCodecOnTheWire(t *testing.T) {
	srv, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	require.NoError(t, srv.Register("Kinds", kindsSvc{}))
	ln, err := srv.Listen(context.Background(), "127.0.0.1:0", nil)
	require.NoError(t, err)
	defer srv.Close()
	sn := newSniffer(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	dial := func(c spi.Codec) *core.Client {
		cl, err := core.NewClient(core.ClientOptions{Targets: []string{sn.ln.Addr().String()}, Codec: c, Logger: hclog.NewNullLogger()})
		require.NoError(t, err)
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	def := dial(nil) // the default codec
	want := fullKinds()

	var got testpb.Kinds
	require.NoError(t, def.Call(ctx, "Kinds.Echo", want, &got))
	assert.True(t, proto.Equal(want, &got), "got %v", &got)
	req, resp := codecsOf(sn.take())
	assert.Equal(t, []uint8{spi.CodecProto}, req, "protobuf in, protobuf out: sent as protobuf")
	assert.Equal(t, []uint8{spi.CodecProto}, resp, "answered in kind")

	var p plain
	require.NoError(t, def.Call(ctx, "Kinds.Plain", &plain{Name: "ada", N: 7}, &p))
	assert.Equal(t, plain{Name: "ada", N: 7}, p)
	req, resp = codecsOf(sn.take())
	assert.Equal(t, []uint8{spi.CodecJSON}, req, "Go structs: JSON")
	assert.Equal(t, []uint8{spi.CodecJSON}, resp)

	want.Choice = &testpb.Kinds_Text{Text: "mixed"}
	require.NoError(t, def.Call(ctx, "Kinds.Mixed", want, &p))
	assert.Equal(t, plain{Name: "mixed", N: 9007199254740993}, p)
	req, resp = codecsOf(sn.take())
	assert.Equal(t, []uint8{spi.CodecJSON}, req, "protobuf request, struct response: JSON (protojson for the request)")
	assert.Equal(t, []uint8{spi.CodecJSON}, resp)

	// An explicit JSON client calls the protobuf method: protojson both ways.
	js := dial(jsoncodec.New())
	text, number, point := fullKinds(), fullKinds(), fullKinds()
	text.Choice = &testpb.Kinds_Text{Text: "t"}
	number.Choice = &testpb.Kinds_Number{Number: -1 << 60}
	point.Choice = nil
	for _, want := range []*testpb.Kinds{fullKinds(), text, number, point} {
		var got testpb.Kinds
		require.NoError(t, js.Call(ctx, "Kinds.Echo", want, &got))
		assert.True(t, proto.Equal(want, &got), "JSON round trip of %v gave %v", want, &got)
	}
	req, resp = codecsOf(sn.take())
	assert.Equal(t, []uint8{1, 1, 1, 1}, req)
	assert.Equal(t, []uint8{1, 1, 1, 1}, resp)

	// And an explicit protobuf client.
	require.NoError(t, dial(protocodec.New()).Call(ctx, "Kinds.Echo", want, &got))
	assert.True(t, proto.Equal(want, &got))
	req, _ = codecsOf(sn.take())
	assert.Equal(t, []uint8{spi.CodecProto}, req)

	// A stream under auto: messages travel under auto's id, as protobuf.
	st, err := def.Stream(ctx, "Kinds.Chat")
	require.NoError(t, err)
	for i := range 3 {
		want.Id = int64(i)
		require.NoError(t, st.Send(want))
		var got testpb.Kinds
		require.NoError(t, st.Recv(&got))
		assert.True(t, proto.Equal(want, &got))
	}
	require.NoError(t, st.CloseSend())
	require.ErrorIs(t, st.Recv(new(testpb.Kinds)), io.EOF)
	for _, f := range sn.take() {
		if f.typ == protocol.TypeStreamData {
			assert.Equal(t, spi.CodecAuto, f.codec, "%+v", f)
		}
	}
}
