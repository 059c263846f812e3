package stack_test

import "os/signal"

var (
	signalNotify = signal.Notify
	signalStop   = signal.Stop
)
