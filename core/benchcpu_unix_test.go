//go:build unix

package core

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used. The
// echo benchmarks run client and server in one process, so CPU per call
// covers both sides; unlike wall time it barely moves when other work
// shares the machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
