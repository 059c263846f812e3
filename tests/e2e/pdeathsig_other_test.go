//go:build !linux

package e2e

import "os/exec"

// dieWithParent does nothing where Pdeathsig is not available; the
// tests' cleanup still stops every server they started.
func dieWithParent(*exec.Cmd) {}
