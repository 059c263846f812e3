package faultproxy

import (
	"fmt"
	"time"
)

// Mode is what a Fault does to the traffic.
type Mode uint8

// Modes. The zero Mode is ModePass.
const (
	ModePass Mode = iota
	ModeDelay
	ModeDrop
	ModeCut
	ModeCorrupt
	ModeBlackHole
)

var modeNames = [...]string{"pass", "delay", "drop", "cut", "corrupt", "black-hole"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// Direction selects the half of a connection a Delay, Drop or Corrupt
// applies to. The zero Direction is Both.
type Direction uint8

// Directions.
const (
	Both       Direction = 0
	Upstream   Direction = 1 // from the proxy's client to the target
	Downstream Direction = 2 // from the target to the proxy's client
)

func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return "both"
}

// covers reports whether a fault for d applies to traffic flowing in dir
// (Upstream or Downstream).
func (d Direction) covers(dir Direction) bool { return d == Both || d == dir }

// Fault describes what the proxy does to a connection's bytes. Build one
// with Pass, Delay, Drop, Cut, CorruptAt, CorruptRate or BlackHole; the
// zero Fault passes everything.
type Fault struct {
	Mode Mode
	// Dir limits Delay, Drop and Corrupt to one direction. Cut and
	// BlackHole always affect the whole connection.
	Dir Direction
	// Latency is the delay added to every chunk (Delay).
	Latency time.Duration
	// Jitter varies Latency per chunk, uniformly within ±Jitter, drawn
	// from a generator seeded with Seed (Delay). Chunks stay in order: one
	// drawn shorter than its predecessor's waits for it, as on a TCP link.
	Jitter time.Duration
	// Offset is the position of a byte to flip, counted in the affected
	// direction from the moment the fault took effect on the connection
	// (Corrupt); negative means none. Offset 0 hits the first byte sent
	// after the fault was set: for a framed protocol on an idle
	// connection, the first byte of the next frame.
	Offset int64
	// Rate is the probability that any byte is flipped (Corrupt), drawn
	// from a generator seeded with Seed, so a run can be replayed.
	Rate float64
	Seed uint64
}

// Pass forwards everything unchanged.
func Pass() Fault { return Fault{Mode: ModePass} }

// Delay forwards every chunk in both directions after d.
func Delay(d time.Duration) Fault { return Fault{Mode: ModeDelay, Latency: d} }

// DelayJitter forwards every chunk in both directions after d ± jitter
// (uniform), the random draws seeded with seed so a run can be replayed.
func DelayJitter(d, jitter time.Duration, seed uint64) Fault {
	return Fault{Mode: ModeDelay, Latency: d, Jitter: jitter, Seed: seed}
}

// DelayDir forwards every chunk flowing in dir after d.
func DelayDir(dir Direction, d time.Duration) Fault {
	return Fault{Mode: ModeDelay, Dir: dir, Latency: d}
}

// Drop silently discards the bytes flowing in dir.
func Drop(dir Direction) Fault { return Fault{Mode: ModeDrop, Dir: dir} }

// Cut closes the connection on both sides; set on the proxy, it also
// closes every connection accepted while it is in force.
func Cut() Fault { return Fault{Mode: ModeCut} }

// CorruptAt flips every bit of the byte at offset (counted from the
// moment the fault takes effect) in dir.
func CorruptAt(dir Direction, offset int64) Fault {
	return Fault{Mode: ModeCorrupt, Dir: dir, Offset: offset}
}

// CorruptRate flips each byte flowing in dir with probability rate.
func CorruptRate(dir Direction, rate float64, seed uint64) Fault {
	return Fault{Mode: ModeCorrupt, Dir: dir, Offset: -1, Rate: rate, Seed: seed}
}

// BlackHole reads and discards everything and never answers: the
// connection stays open, silent, for good.
func BlackHole() Fault { return Fault{Mode: ModeBlackHole} }

func (f Fault) String() string {
	switch f.Mode {
	case ModeDelay:
		if f.Jitter > 0 {
			return fmt.Sprintf("delay %s %s ±%s", f.Dir, f.Latency, f.Jitter)
		}
		return fmt.Sprintf("delay %s %s", f.Dir, f.Latency)
	case ModeDrop:
		return fmt.Sprintf("drop %s", f.Dir)
	case ModeCorrupt:
		s := "corrupt " + f.Dir.String()
		if f.Offset >= 0 {
			s += fmt.Sprintf(" at %d", f.Offset)
		}
		if f.Rate > 0 {
			s += fmt.Sprintf(" rate %g", f.Rate)
		}
		return s
	}
	return f.Mode.String()
}

func (f Fault) validate() error {
	switch f.Mode {
	case ModePass, ModeDrop, ModeCut, ModeBlackHole:
	case ModeDelay:
		if f.Latency < 0 {
			return fmt.Errorf("faultproxy: negative latency %s", f.Latency)
		}
		if f.Jitter < 0 || f.Jitter > f.Latency {
			return fmt.Errorf("faultproxy: jitter %s is not within [0, latency %s]", f.Jitter, f.Latency)
		}
	case ModeCorrupt:
		if f.Rate < 0 || f.Rate > 1 {
			return fmt.Errorf("faultproxy: corruption rate %g is not within [0, 1]", f.Rate)
		}
		if f.Offset < 0 && f.Rate == 0 {
			return fmt.Errorf("faultproxy: corrupt fault needs an offset or a rate")
		}
	default:
		return fmt.Errorf("faultproxy: unknown mode %d", f.Mode)
	}
	if f.Dir > Downstream {
		return fmt.Errorf("faultproxy: unknown direction %d", f.Dir)
	}
	return nil
}

// setting is a fault as installed: each Set gets a new version, so a
// connection can tell a fresh fault (restart the corruption offset count)
// from the one it has been applying.
type setting struct {
	Fault
	version uint64
}
