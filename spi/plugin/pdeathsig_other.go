//go:build !linux

package plugin

import "os/exec"

// setDeathSignal is a no-op where the kernel offers no parent-death
// signal; there the host relies on Process.Close and Shutdown.
func setDeathSignal(*exec.Cmd) {}
