package quorum

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a member die with the test binary, even when the
// test binary is SIGKILLed.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
