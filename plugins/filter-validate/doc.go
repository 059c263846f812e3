// Package validatefilter is the "validate" filter: it checks each request
// before the handler runs and refuses an invalid one with InvalidArgument,
// naming every failing field.
//
// Two conventions are understood, in this order:
//
//   - A request with a ValidateAll() error or Validate() error method
//     checks itself. protoc-gen-validate generates both for protobuf
//     messages; its per-field errors (Field, Reason, and Cause for nested
//     messages) become field paths such as "Address.Zip" or
//     "Items[2].Sku". Any other error is one violation of the whole
//     request.
//   - Any other struct is checked with github.com/go-playground/validator
//     v10 rules in `validate:"…"` struct tags (required, min, max, email,
//     oneof, dive, …). Paths use the fields' json names ("address.zip",
//     "items[1].qty") unless name_tag says otherwise.
//
// The error's message lists the fields and what each needs, never the
// values (a request may carry secrets). Its Details are a protobuf
// google.rpc.BadRequest with one FieldViolation per field, the gRPC
// convention for INVALID_ARGUMENT, so they reach any client, including
// gRPC ones; Violations decodes them from an error. A rule that cannot
// run (an unknown tag) is the server's mistake and gives Internal.
//
// The server side always validates; with client = true a client checks
// its requests before sending them. Requests that are not structs (raw
// bytes, maps) and stream openings pass untouched; skip_methods exempts
// methods.
//
// The filter needs the request value, which an out-of-process filter
// never sees (only method, peer and metadata cross the bridge): link this
// package into the host. Served out of process it lets every call through
// and logs a warning when built.
package validatefilter
