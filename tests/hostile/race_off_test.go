//go:build !race

package hostile

// raceMemFactor scales the RSS bounds these tests assert (see
// race_on_test.go).
const raceMemFactor = 1.0
