package protocol

import (
	"bytes"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func buildFrame(t Type, id uint32, meta func([]byte) []byte, body []byte) []byte {
	var fb Builder
	fb.Begin(t, 0, spi.CodecJSON, 0, id)
	if meta != nil {
		fb.B = meta(fb.B)
	}
	fb.EndMeta()
	fb.B = append(fb.B, body...)
	out := append([]byte(nil), fb.Finish()...)
	fb.Release()
	return out
}

func TestRoundTrip(t *testing.T) {
	md := &spi.Metadata{}
	md.Set(spi.MetaAuthorization, "Bearer x")
	md.Set("tenant", "acme")
	md.Set(spi.MetaTraceParent, "00-abc-def-01")
	raw := buildFrame(TypeRequest, 42, func(b []byte) []byte {
		b = AppendMethod(b, "Echo.Say")
		b = AppendTimeout(b, 1500*time.Microsecond)
		return AppendMD(b, md)
	}, []byte(`{"msg":"hi"}`))

	r := NewReader(bytes.NewReader(raw), 0, 0, 0)
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	defer f.Release()
	require.Equal(t, TypeRequest, f.Type)
	require.Equal(t, uint32(42), f.ID)
	require.Equal(t, spi.CodecJSON, f.Codec)
	require.Equal(t, `{"msg":"hi"}`, string(f.Body))
	got := Meta{MD: &spi.Metadata{}}
	require.NoError(t, DecodeMeta(f.Meta, &got))
	require.Equal(t, "Echo.Say", string(got.Method))
	require.True(t, got.HasTimeout)
	require.Equal(t, 1500*time.Microsecond, got.Timeout)
	require.Equal(t, "Bearer x", got.MD.Get(spi.MetaAuthorization))
	require.Equal(t, "acme", got.MD.Get("tenant"))
	require.Equal(t, "00-abc-def-01", got.MD.Get(spi.MetaTraceParent))
	require.ErrorIs(t, r.ReadFrame(&f), io.EOF)
}

func TestErrorStatusRoundTrip(t *testing.T) {
	in := &spi.Error{Code: spi.NotFound, Message: "user 7 not found", Details: []byte{1, 2, 3}}
	raw := buildFrame(TypeResponse, 1, func(b []byte) []byte { return AppendError(b, in) }, nil)
	var f Frame
	require.NoError(t, NewReader(bytes.NewReader(raw), 0, 0, 0).ReadFrame(&f))
	var m Meta
	require.NoError(t, DecodeMeta(f.Meta, &m))
	e := m.Err()
	require.Equal(t, in.Code, e.Code)
	require.Equal(t, in.Message, e.Message)
	require.Equal(t, in.Details, e.Details)
	f.Release()
}

// countingReader fails the test if more than limit bytes are requested,
// proving an oversized body is never read (and so never allocated).
type countingReader struct {
	r    io.Reader
	read int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func TestOversizedFrameRejectedBeforeAllocation(t *testing.T) {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Version: Version, Type: TypeRequest, ID: 1, BodyLen: 1 << 30})
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(h[:]), neverEnding{})}
	r := NewReader(cr, 64, 1<<20, 0)
	var f Frame
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := r.ReadFrame(&f)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrFrameTooBig)
	require.Nil(t, f.buf)
	// Nothing near the announced 1 GiB was allocated, nor read.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10))
	require.LessOrEqual(t, cr.read, 64)
}

type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestMetaTooBig(t *testing.T) {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Version: Version, Type: TypeRequest, MetaLen: 1 << 20})
	err := NewReader(bytes.NewReader(h[:]), 0, 0, 64<<10).ReadFrame(&Frame{})
	require.ErrorIs(t, err, ErrMetaTooBig)
}

func TestLengthOverflowRejected(t *testing.T) {
	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Version: Version, Type: TypeRequest, MetaLen: 0xFFFF, BodyLen: 0xFFFFFFFF})
	require.Error(t, ParseHeader(h[:], &Header{}, 1<<20, 1<<20))
}

func TestBadMagicAndVersion(t *testing.T) {
	bad := make([]byte, HeaderSize)
	require.ErrorIs(t, NewReader(bytes.NewReader(bad), 0, 0, 0).ReadFrame(&Frame{}), ErrBadMagic)

	var h [HeaderSize]byte
	PutHeader(h[:], &Header{Version: 9, Type: TypeRequest, ID: 77})
	var ve *VersionError
	require.ErrorAs(t, NewReader(bytes.NewReader(h[:]), 0, 0, 0).ReadFrame(&Frame{}), &ve)
	require.Equal(t, uint8(9), ve.Got)
	require.Equal(t, uint32(77), ve.ID)

	PutHeader(h[:], &Header{Version: Version, Type: 200})
	require.ErrorIs(t, NewReader(bytes.NewReader(h[:]), 0, 0, 0).ReadFrame(&Frame{}), ErrBadType)
}

func TestTruncatedBody(t *testing.T) {
	raw := buildFrame(TypeRequest, 1, nil, []byte("hello world"))
	err := NewReader(bytes.NewReader(raw[:len(raw)-3]), 0, 0, 0).ReadFrame(&Frame{})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestMalformedMeta(t *testing.T) {
	for _, b := range [][]byte{
		{TagMethod},                       // no length
		{TagMethod, 5, 'a'},               // length beyond end
		{TagTimeout, 1, 0x80},             // truncated varint
		{TagKV, 2, 9, 'a'},                // key length beyond value
		{TagErrCode, 3, 0xff, 0xff, 0x7f}, // code too large
	} {
		require.ErrorIs(t, DecodeMeta(b, &Meta{MD: &spi.Metadata{}}), ErrBadMetadata, "%x", b)
	}
	// Unknown tags are skipped.
	var m Meta
	require.NoError(t, DecodeMeta([]byte{0x60, 2, 'x', 'y', TagMethod, 1, 'M'}, &m))
	require.Equal(t, "M", string(m.Method))
}

func BenchmarkReadFrame1K(b *testing.B) {
	raw := buildFrame(TypeRequest, 1, func(b []byte) []byte { return AppendMethod(b, "Echo.Say") }, make([]byte, 1024))
	rd := bytes.NewReader(nil)
	r := NewReader(rd, 0, 0, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	var f Frame
	for i := 0; i < b.N; i++ {
		rd.Reset(raw)
		r.r.Reset(rd)
		if err := r.ReadFrame(&f); err != nil {
			b.Fatal(err)
		}
		var m Meta
		_ = DecodeMeta(f.Meta, &m)
		f.Release()
	}
}
