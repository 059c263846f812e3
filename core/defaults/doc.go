// Package defaults is the one table of Kite's default settings. Both ways
// of configuring Kite read it: core.ClientOptions and core.ServerOptions
// fill their zero fields from it, and core/config gives every attribute a
// kite.hcl leaves out the same value, so a client or server built from Go
// options with zero values behaves exactly like one built from a minimal
// kite.hcl. Each constant's comment says why it has its value.
//
// Tests hold everything to the table: core/stack's TestDefaultsAgree
// builds a client and a server both ways and compares every field of the
// effective options (by reflection, so an option added later is covered
// without touching the test), and TestConfigDocDefaults checks each
// row's default against docs/CONFIG.md.
//
// Adding an option: a constant here with its reason, a row in Table, the
// zero-value fill in core's defaults(), and the attribute's default in
// core/config's applyDefaults.
package defaults
