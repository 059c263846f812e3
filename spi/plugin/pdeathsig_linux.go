package plugin

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel SIGKILL the plugin when the thread that
// started it dies, which (because plugins are started from a thread that
// is locked for the life of the process, see spawner) is when the host
// process dies, even by SIGKILL, when no deferred cleanup can run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
