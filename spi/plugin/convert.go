package plugin

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiterpc/kite/spi"
	pb "github.com/kiterpc/kite/spi/plugin/proto"
)

func instanceToPB(in spi.Instance) *pb.Instance {
	return &pb.Instance{
		Service:  in.Service,
		Addr:     in.Addr,
		Weight:   int64(in.Weight),
		Version:  in.Version,
		Zone:     in.Zone,
		Tags:     in.Tags,
		Metadata: in.Metadata,
	}
}

func instanceFromPB(p *pb.Instance) spi.Instance {
	if p == nil {
		return spi.Instance{}
	}
	return spi.Instance{
		Service:  p.Service,
		Addr:     p.Addr,
		Weight:   int(p.Weight),
		Version:  p.Version,
		Zone:     p.Zone,
		Tags:     p.Tags,
		Metadata: p.Metadata,
	}
}

func instancesToPB(ins []spi.Instance) []*pb.Instance {
	out := make([]*pb.Instance, len(ins))
	for i, in := range ins {
		out[i] = instanceToPB(in)
	}
	return out
}

func instancesFromPB(ps []*pb.Instance) []spi.Instance {
	out := make([]spi.Instance, len(ps))
	for i, p := range ps {
		out[i] = instanceFromPB(p)
	}
	return out
}

func metaToPB(m *spi.Metadata) []*pb.MetaPair {
	if m.Len() == 0 {
		return nil
	}
	out := make([]*pb.MetaPair, 0, m.Len())
	m.Range(func(k, v string) bool {
		out = append(out, &pb.MetaPair{Key: k, Value: v})
		return true
	})
	return out
}

// setMeta replaces m's pairs with ps, keeping order.
func setMeta(m *spi.Metadata, ps []*pb.MetaPair) {
	m.Reset()
	for _, p := range ps {
		m.Add(p.Key, p.Value)
	}
}

func metaFromPB(ps []*pb.MetaPair) *spi.Metadata {
	m := &spi.Metadata{}
	setMeta(m, ps)
	return m
}

// statusToPB turns a call result into a Status message (nil error → code 0).
func statusToPB(err error) *pb.Status {
	if err == nil {
		return &pb.Status{}
	}
	e := spi.AsError(err)
	code := e.Code
	if code == spi.OK {
		code = spi.Unknown
	}
	return &pb.Status{Code: uint32(code), Message: e.Message, Details: e.Details}
}

// statusFromPB is the reverse of statusToPB.
func statusFromPB(s *pb.Status) error {
	if s == nil || s.Code == 0 {
		return nil
	}
	return &spi.Error{Code: spi.Code(s.Code), Message: s.Message, Details: s.Details}
}

// toGRPC turns an implementation's error into a gRPC status error marked
// as an application error (it carries an ErrorDetail), keeping its code.
// Kite codes equal gRPC codes numerically, so the mapping is the identity.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	e := spi.AsError(err)
	code := codes.Code(e.Code)
	if code == codes.OK {
		code = codes.Unknown
	}
	st := status.New(code, e.Message)
	if withDetail, derr := st.WithDetails(&pb.ErrorDetail{Details: e.Details}); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// appError extracts the plugin's application error from a gRPC error. ok
// is false when the error did not come from the implementation but from
// the bridge itself (the process died, the connection broke).
func appError(err error) (e *spi.Error, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return nil, false
	}
	for _, d := range st.Details() {
		if ed, isDetail := d.(*pb.ErrorDetail); isDetail {
			return &spi.Error{Code: spi.Code(st.Code()), Message: st.Message(), Details: ed.Details}, true
		}
	}
	return nil, false
}

// ctxError maps a context error to the Kite error with the same code.
func ctxError(ctx context.Context, what string) *spi.Error {
	err := ctx.Err()
	code := spi.Canceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = spi.DeadlineExceeded
	}
	return spi.WrapError(code, err, "%s: %v", what, err)
}

// deadlineNano returns ctx's deadline in Unix nanoseconds, 0 for none.
func deadlineNano(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return d.UnixNano()
	}
	return 0
}

func deadlineFromNano(n int64) (time.Time, bool) {
	if n == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}
