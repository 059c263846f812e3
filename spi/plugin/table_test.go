package plugin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/spi"
)

func TestTablePickerRing(t *testing.T) {
	ins := []spi.Instance{{Service: "s", Addr: "a:1"}, {Service: "s", Addr: "b:1"}, {Service: "s", Addr: "c:1"}}
	ka, kb := fnv1a64("key-a"), fnv1a64("key-b")
	// Points just at each key's hash, unsorted: the picker sorts them.
	ring := []spi.RingPoint{{Hash: kb, Index: 1}, {Hash: ka, Index: 2}, {Hash: 0, Index: 0}}
	p, err := NewTablePicker(ins, spi.PickTable{Ring: ring, Schedule: []int{0}})
	require.NoError(t, err)
	ctx := context.Background()
	pick := func(info spi.PickInfo) string {
		r, err := p.Pick(ctx, info)
		require.NoError(t, err)
		return r.Instance.Addr
	}
	assert.Equal(t, "c:1", pick(spi.PickInfo{Key: "key-a"}))
	assert.Equal(t, "b:1", pick(spi.PickInfo{Key: "key-b"}))
	assert.Equal(t, "a:1", pick(spi.PickInfo{}), "no key: the schedule")
	// Excluding the key's instance moves to the next point on the ring.
	assert.NotEqual(t, "c:1", pick(spi.PickInfo{Key: "key-a", Exclude: []string{"c:1"}}))
	// Everything excluded: still a pick.
	assert.NotEmpty(t, pick(spi.PickInfo{Key: "key-a", Exclude: []string{"a:1", "b:1", "c:1"}}))

	_, err = NewTablePicker(ins, spi.PickTable{Schedule: []int{3}})
	assert.ErrorContains(t, err, "out of range")
	_, err = NewTablePicker(ins, spi.PickTable{HashFunc: "md5"})
	assert.ErrorContains(t, err, "unknown ring hash")
	c, err := NewTablePicker(ins, spi.PickTable{HashFunc: "crc32", Ring: []spi.RingPoint{{Hash: 1, Index: 1}}})
	require.NoError(t, err)
	r, err := c.Pick(ctx, spi.PickInfo{Key: "x"})
	require.NoError(t, err)
	assert.Equal(t, "b:1", r.Instance.Addr)
}

func TestWeightedSchedule(t *testing.T) {
	ins := []spi.Instance{{Addr: "a", Weight: 300}, {Addr: "b", Weight: 100}, {Addr: "c"}}
	// Weights 3:1:1 after dividing by their gcd, smooth (no bursts).
	assert.Equal(t, []int{0, 1, 0, 2, 0}, weightedSchedule(ins))
	assert.Nil(t, weightedSchedule(nil))
}
