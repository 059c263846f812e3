package spi

import (
	"errors"
	"fmt"
)

// FieldError is a configuration error about one attribute of a plugin's
// block: a factory returns it (FieldErrorf) for a value the schema's type
// admits but the plugin cannot use — a server address without a port,
// say — and the host reports it at that attribute's file:line:col in
// kite.hcl instead of at the block's header.
type FieldError struct {
	// Field is the attribute's name as in the Schema ("servers").
	Field string
	Err   error
}

// FieldErrorf builds a *FieldError about field with a formatted message.
func FieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (e *FieldError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldOf returns the attribute an error (or one it wraps) is about, ""
// when it is not a FieldError.
func FieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
