package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps a unit suffix (lower case) to its multiplier. Binary
// units (KiB, MiB, …) are powers of 1024; decimal ones (kB, MB, …) are
// powers of 1000, as their SI names say. "K"/"M"/"G" alone are refused:
// they are exactly the ambiguity that makes "4M" mean two things.
var sizeUnits = map[string]float64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize parses a byte size such as "4MiB", "64KiB", "1.5GiB", "10MB",
// "512B" or a plain number of bytes ("4096"). Units are case-insensitive;
// spaces between number and unit are allowed. Fractions are rounded down
// to whole bytes. Negative sizes and sizes beyond int64 are errors.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		if strings.HasPrefix(in, "-") {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has an unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)", s, strings.TrimSpace(in[i:]))
	}
	if !strings.Contains(num, ".") {
		// Integers take the exact path so large byte counts keep every digit.
		n, err := strconv.ParseUint(num, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		if n > uint64(math.MaxInt64)/uint64(mult) {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return int64(n) * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is not a number", s)
	}
	v := math.Floor(f * mult)
	if v >= math.MaxInt64 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// FormatSize renders n in the largest binary unit that divides it
// exactly ("4MiB", "1536KiB", "100B"): the inverse of ParseSize for
// printing defaults and effective configuration.
func FormatSize(n int64) string {
	units := []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
