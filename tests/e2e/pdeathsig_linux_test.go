package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a server process die with the test binary, even
// when the test binary is killed, so no server outlives a test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
