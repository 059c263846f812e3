package testkit

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a helper process die with the test binary, even
// when the test binary is killed, so no helper outlives a test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
