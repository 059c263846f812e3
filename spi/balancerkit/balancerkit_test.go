package balancerkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/balancerkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func instances(weights ...int) []spi.Instance {
	out := make([]spi.Instance, len(weights))
	for i, w := range weights {
		out[i] = spi.Instance{Service: "s", Addr: "127.0.0.1:" + string(rune('a'+i)), Weight: w}
	}
	return out
}

func TestEmpty(t *testing.T) {
	_, err := balancerkit.Empty.Pick(context.Background(), spi.PickInfo{})
	assert.True(t, errors.Is(err, spi.ErrNoInstance), "got %v", err)
}

func TestPeriodWeights(t *testing.T) {
	w, total := balancerkit.PeriodWeights(nil, 10)
	assert.Nil(t, w)
	assert.Zero(t, total)

	// Reduced by the gcd; a missing weight is the default, 100.
	w, total = balancerkit.PeriodWeights(instances(100, 200, 700), 1<<16)
	assert.Equal(t, []int{1, 2, 7}, w)
	assert.Equal(t, 10, total)
	w, total = balancerkit.PeriodWeights(instances(0, 1, 50, 100, 300), 1<<16)
	assert.Equal(t, []int{100, 1, 50, 100, 300}, w)
	assert.Equal(t, 551, total)

	// Scaled down to fit, every instance keeping a slot.
	w, total = balancerkit.PeriodWeights(instances(1, 1_000_000, 999_999), 100)
	assert.Equal(t, []int{1, 50, 49}, w)
	assert.Equal(t, 100, total)

	// More instances than slots: one slot each.
	w, total = balancerkit.PeriodWeights(instances(1, 2, 3, 5, 7), 3)
	assert.Equal(t, []int{1, 1, 1, 1, 1}, w)
	assert.Equal(t, 5, total)
}
