//go:build !unix

package core

import "time"

// processCPU is not measured on this platform; the benchmarks then report
// no cpu-ns/op.
func processCPU() time.Duration { return 0 }
