package stack

import "github.com/kiterpc/kite/core/config"

// Check validates the kite.hcl at path as strictly as a process that
// builds every block would (Load, then StartPlugins: Load alone starts
// no plugin), then stops what it started: the file
// parses and type-checks against the catalog; each declared plugin's
// executable (and files) exists and matches its sha256, starts, answers
// the handshake within the start timeout and serves the declared kind;
// and every block a plugin serves matches the schema the plugin reports
// (a typo inside a plugin-defined block is an error here, not at the
// first start). Errors carry the file:line:col of the attribute at
// fault.
//
// `kite check` calls it with the plugins the kite binary links; a host
// with compiled-in plugins of its own exposes the same check with its
// catalog, as `yourapp check`:
//
//	if _, err := stack.Check("kite.hcl"); err != nil { … }
//
// The returned File (nil on error) lists what the file declares, and its
// Warnings.
func Check(path string, opts ...Option) (*config.File, error) {
	st, err := Load(path, opts...)
	if err != nil {
		return nil, err
	}
	if err := st.StartPlugins(); err != nil {
		st.Close()
		return nil, err
	}
	f := st.File()
	if err := st.Close(); err != nil {
		return f, err
	}
	return f, nil
}
