package defaults

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfigDocDefaults checks every row of Table against the default
// docs/CONFIG.md gives the attribute in the table of its block, so the
// reference cannot drift from what the code does.
func TestConfigDocDefaults(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	heading := regexp.MustCompile("^#+ `([a-z_.]+)`")
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|[^|]*\\| ([^|]*) \\|")
	cells := map[string]string{} // "client.pool.idle_timeout" -> default cell
	block := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := heading.FindStringSubmatch(line); m != nil {
			block = m[1]
			continue
		}
		if strings.HasPrefix(line, "#") {
			block = ""
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && block != "" {
			cells[block+"."+m[1]] = strings.TrimSpace(m[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range Table {
		key := s.Block + "." + s.Attr
		cell, ok := cells[key]
		if !ok {
			t.Errorf("docs/CONFIG.md has no row for %s (block %q, attribute %q)", key, s.Block, s.Attr)
			continue
		}
		want := s.Doc()
		got := cell
		if strings.HasPrefix(cell, "`") {
			got, _, _ = strings.Cut(cell[1:], "`")
		} else if strings.HasPrefix(cell, want) {
			got = want
		}
		if got != want {
			t.Errorf("docs/CONFIG.md gives %s the default %s; core/defaults has %s", key, cell, want)
		}
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 5 * time.Minute: "5m", 90 * time.Second: "90s", 50 * time.Millisecond: "50ms", 2 * time.Hour: "2h",
		1500 * time.Microsecond: "1.5ms",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{4 << 20: "4MiB", 64 << 10: "64KiB", 1 << 30: "1GiB", 1000: "1000", 0: "0"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
	if got := (Setting{Value: []int{}}).Doc(); got != "[]" {
		t.Errorf("Doc of an unknown type = %q", got)
	}
}
