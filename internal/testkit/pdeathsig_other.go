//go:build !linux

package testkit

import "os/exec"

// dieWithParent does nothing where Pdeathsig is not available; the
// tests' cleanup still stops every helper process they started.
func dieWithParent(*exec.Cmd) {}
