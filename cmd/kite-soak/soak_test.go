package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSoak is the CI soak: 20 seconds against three servers with a fault
// every second (every kind of the schedule, most of them twice or more).
// No call may be lost and every answer must be the right one; resources
// are reported, not judged, over so short a run (make soak judges them).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes 20 s; skipped under -short")
	}
	var out bytes.Buffer
	rep, err := Run(context.Background(), Config{
		Duration:    20 * time.Second,
		Workers:     16,
		Rate:        1000,
		StreamShare: 0.1,
		FaultEvery:  time.Second,
		SampleEvery: 5 * time.Second,
		Out:         &out,
	})
	require.NoError(t, err)
	var sum bytes.Buffer
	rep.Format(&sum)
	t.Log("\n" + sum.String())
	assert.Zero(t, rep.Lost, "lost calls: %v", rep.LostDetails)
	assert.Zero(t, rep.Wrong, "wrong answers")
	assert.Greater(t, rep.OK, rep.Calls*8/10, "most calls succeed despite the faults")
	for _, k := range faultKinds {
		assert.Positive(t, rep.Faults[k], "fault %s injected", k)
	}
	assert.Positive(t, rep.Hostile.Rounds, "hostile rounds ran")
	assert.Zero(t, rep.Hostile.Failures, "hostile clients held: %v", rep.Hostile.FailureText)
	assert.Equal(t, rep.Hostile.IdleOpened, rep.Hostile.IdleEnded+rep.Hostile.IdleRefused, "every idle stream ended")
	assert.False(t, rep.CloseBlocked, "client Close blocked")
	assert.Zero(t, rep.Stranded, "stranded writer goroutines")
}

func TestFlags(t *testing.T) {
	assert.Equal(t, 2, run([]string{"-no-such-flag"}))
}

// judge compares window averages: a gauge swinging ±25% around a level
// is flat, a steady 2%-per-minute climb over 10 minutes is not, whatever
// single samples happen to say.
func TestJudgeWindows(t *testing.T) {
	series := func(f func(i int) int) *Report {
		r := &Report{}
		for i := 0; i <= 120; i++ { // every 5 s for 10 minutes
			r.Samples = append(r.Samples, Sample{At: time.Duration(i) * 5 * time.Second, Goroutines: f(i), RSS: 100 << 20})
		}
		r.judge(2*time.Minute, time.Minute)
		return r
	}
	swing := []int{200, 150, 250, 180, 220}
	flat := series(func(i int) int { return swing[i%len(swing)] })
	assert.Equal(t, 12, flat.MarkCount)
	assert.Equal(t, 12, flat.EndCount)
	assert.True(t, flat.Flat(), "drift %.3f", flat.GoroutineDrift)
	assert.Less(t, abs(flat.GoroutineSlope), 0.01)
	assert.Equal(t, 150, flat.GoroutinesMin)
	assert.Equal(t, 250, flat.GoroutinesMax)

	leak := series(func(i int) int { return 200 + 200*i/600 }) // +2%/min of 200... rising
	assert.False(t, leak.Flat(), "drift %.3f", leak.GoroutineDrift)
	assert.Greater(t, leak.GoroutineSlope, 0.015)
}
