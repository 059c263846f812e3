package balancerkit

import (
	"context"

	"github.com/kiterpc/kite/spi"
)

// Empty is the picker of an empty instance list: every Pick fails with
// spi.ErrNoInstance, which the client reports as Unavailable.
var Empty spi.Picker = emptyPicker{}

type emptyPicker struct{}

func (emptyPicker) Pick(context.Context, spi.PickInfo) (spi.PickResult, error) {
	return spi.PickResult{}, spi.ErrNoInstance
}

// PeriodWeights returns how many slots each of instances takes in one
// period of a pick schedule, and the period's length: the effective
// weights reduced by their greatest common divisor (100:200:700 is a
// period of 1+2+7) and, when they still sum to more than maxTotal,
// scaled down in proportion to fit. Every instance keeps at least one
// slot, so none is starved; that floor can exceed maxTotal only with more
// than maxTotal instances, where the period is one slot each.
//
// It returns nil, 0 for no instances; maxTotal must be positive.
func PeriodWeights(instances []spi.Instance, maxTotal int) (weights []int, total int) {
	if len(instances) == 0 {
		return nil, 0
	}
	w := make([]int, len(instances))
	g := 0
	for i, in := range instances {
		w[i] = in.EffectiveWeight()
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxTotal {
		scaled := 0
		for i := range w {
			w[i] = max(1, int(int64(w[i])*int64(maxTotal)/int64(total)))
			scaled += w[i]
		}
		total = scaled
	}
	return w, total
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
