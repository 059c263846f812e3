package health

import (
	"encoding/binary"
	"errors"

	"github.com/kiterpc/kite/spi"
)

// CheckRequest and CheckResponse have two encodings on Kite's protocol,
// chosen by the caller's codec: JSON ({"service":…}, {"status":"SERVING"})
// as plain structs, and protobuf through the methods below, which the
// proto codec (plugins/codec-proto) uses for any value that has them
// (its VTMessage interface, the vtprotobuf API). The protobuf bytes are
// those of grpc.health.v1's HealthCheckRequest (field 1, string service)
// and HealthCheckResponse (field 1, enum status: UNKNOWN 0, SERVING 1,
// NOT_SERVING 2, SERVICE_UNKNOWN 3), so a proto-codec client checks a
// Kite server's health with the standard messages, and a Kite client on
// the grpc transport can call a grpc-go health server with Check and
// Watch (Packages: {"Health": "grpc.health.v1"}).
//
// The types stay plain structs rather than proto.Message on purpose:
// the JSON codec and the "auto" codec pick protojson / protobuf for
// proto.Message values, which would move every JSON or auto client's
// health calls to another encoding (and auto ones to the proto codec,
// which a JSON-only server does not link). These methods are seen by the
// proto codec only.

var errHealthWire = errors.New("health: malformed protobuf message")

// SizeVT returns the size of the request's protobuf encoding.
func (m *CheckRequest) SizeVT() int {
	if m == nil || m.Service == "" {
		return 0
	}
	return 1 + uvarintLen(uint64(len(m.Service))) + len(m.Service)
}

// MarshalToSizedBufferVT writes the request's protobuf encoding at the
// end of dAtA (SizeVT bytes) and returns its length.
func (m *CheckRequest) MarshalToSizedBufferVT(dAtA []byte) (int, error) {
	n := m.SizeVT()
	if len(dAtA) < n {
		return 0, spi.Errorf(spi.Internal, "health: buffer of %d bytes for a %d-byte CheckRequest", len(dAtA), n)
	}
	if n == 0 {
		return 0, nil
	}
	b := dAtA[len(dAtA)-n:]
	b[0] = 1<<3 | 2 // field 1, length-delimited
	k := binary.PutUvarint(b[1:], uint64(len(m.Service)))
	copy(b[1+k:], m.Service)
	return n, nil
}

// UnmarshalVT decodes a grpc.health.v1 HealthCheckRequest into m,
// replacing what m held; unknown fields are skipped.
func (m *CheckRequest) UnmarshalVT(dAtA []byte) error {
	*m = CheckRequest{}
	return eachField(dAtA, func(num uint64, typ uint64, v uint64, data []byte) error {
		if num == 1 {
			if typ != 2 {
				return spi.Errorf(spi.InvalidArgument, "health: CheckRequest field 1 (service) has wire type %d, want 2", typ)
			}
			m.Service = string(data)
		}
		return nil
	})
}

var statusNumbers = map[Status]uint64{Unknown: 0, Serving: 1, NotServing: 2, ServiceUnknown: 3}
var statusNames = [...]Status{Unknown, Serving, NotServing, ServiceUnknown}

// statusNumber is st's grpc.health.v1 ServingStatus; a status outside
// those four (SetStatus takes any string) is UNKNOWN, as in
// core/grpcsvc's gRPC health service.
func statusNumber(st Status) uint64 { return statusNumbers[st] }

// SizeVT returns the size of the response's protobuf encoding.
func (m *CheckResponse) SizeVT() int {
	if m == nil {
		return 0
	}
	if n := statusNumber(m.Status); n != 0 {
		return 1 + uvarintLen(n)
	}
	return 0
}

// MarshalToSizedBufferVT writes the response's protobuf encoding at the
// end of dAtA (SizeVT bytes) and returns its length.
func (m *CheckResponse) MarshalToSizedBufferVT(dAtA []byte) (int, error) {
	n := m.SizeVT()
	if len(dAtA) < n {
		return 0, spi.Errorf(spi.Internal, "health: buffer of %d bytes for a %d-byte CheckResponse", len(dAtA), n)
	}
	if n == 0 {
		return 0, nil
	}
	b := dAtA[len(dAtA)-n:]
	b[0] = 1 << 3 // field 1, wire type 0 (varint)
	binary.PutUvarint(b[1:], statusNumber(m.Status))
	return n, nil
}

// UnmarshalVT decodes a grpc.health.v1 HealthCheckResponse into m; a
// status number this package does not name reads as UNKNOWN.
func (m *CheckResponse) UnmarshalVT(dAtA []byte) error {
	*m = CheckResponse{Status: Unknown}
	return eachField(dAtA, func(num uint64, typ uint64, v uint64, _ []byte) error {
		if num == 1 {
			if typ != 0 {
				return spi.Errorf(spi.InvalidArgument, "health: CheckResponse field 1 (status) has wire type %d, want 0", typ)
			}
			m.Status = Unknown
			if v < uint64(len(statusNames)) {
				m.Status = statusNames[v]
			}
		}
		return nil
	})
}

// eachField walks a protobuf message: fn gets each field's number, wire
// type and value (v for varints, data for length-delimited fields).
func eachField(b []byte, fn func(num, typ, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, k := binary.Uvarint(b)
		if k <= 0 {
			return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: bad field key", errHealthWire)
		}
		b = b[k:]
		num, typ := key>>3, key&7
		if num == 0 {
			return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: field number 0", errHealthWire)
		}
		var v uint64
		var data []byte
		switch typ {
		case 0:
			v, k = binary.Uvarint(b)
			if k <= 0 {
				return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: bad varint in field %d", errHealthWire, num)
			}
			b = b[k:]
		case 1:
			if len(b) < 8 {
				return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: field %d truncated", errHealthWire, num)
			}
			b = b[8:]
		case 2:
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: field %d truncated", errHealthWire, num)
			}
			data, b = b[k:k+int(l)], b[k+int(l):]
		case 5:
			if len(b) < 4 {
				return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: field %d truncated", errHealthWire, num)
			}
			b = b[4:]
		default:
			return spi.WrapError(spi.InvalidArgument, errHealthWire, "%v: field %d has unsupported wire type %d", errHealthWire, num, typ)
		}
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
