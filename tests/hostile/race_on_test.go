//go:build race

package hostile

// raceMemFactor scales the RSS bounds these tests assert: under the race
// detector the server process's shadow memory and bookkeeping multiply
// what every byte it holds costs.
const raceMemFactor = 2.5
