//go:build race

package core

// raceMemFactor scales memory bounds asserted by tests: the race
// detector's shadow memory and bookkeeping multiply a process's RSS.
const raceMemFactor = 4
