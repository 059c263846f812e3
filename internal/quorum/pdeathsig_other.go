//go:build !linux

package quorum

import "os/exec"

// dieWithParent does nothing where there is no parent-death signal;
// Close (from t.Cleanup) still ends every member.
func dieWithParent(*exec.Cmd) {}
