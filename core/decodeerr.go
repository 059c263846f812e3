package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kiterpc/kite/spi"
)

// errDecoding is the InvalidArgument a caller gets for a body its codec
// cannot decode. The message says what shape was expected where the
// codec's error tells (encoding/json's type and syntax errors: the field,
// the Go type wanted, the JSON found), so "decoding json body" alone
// never leaves the caller guessing.
func errDecoding(codec string, err error) *spi.Error {
	return spi.WrapError(spi.InvalidArgument, err, "decoding %s body: %s", codec, decodeDetail(err))
}

func decodeDetail(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := "the request"
		if te.Field != "" {
			where = fmt.Sprintf("field %q", te.Field)
		}
		return fmt.Sprintf("%s: want %s, got JSON %s (at byte %d)", where, jsonKind(te.Type.String()), te.Value, te.Offset)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	msg := err.Error()
	const maxDetail = 200 // a codec's message may quote the input; keep it short
	if len(msg) > maxDetail {
		msg = msg[:maxDetail] + "…"
	}
	return msg
}

// jsonKind names a Go type the way a JSON author thinks of it.
func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number (" + goType + ")"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array (" + goType + ")"
	}
	return "an object (" + goType + ")" // structs and maps
}
