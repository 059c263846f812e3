package spitest_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/spitest"
)

// refCodec is a minimal correct codec over encoding/json: the reference
// the suite is checked against, so a failure here is a bug in the suite.
// Its fault field turns it into one of the broken codecs below, to prove
// the suite notices each kind of breakage.
type refCodec struct{ fault string }

func (refCodec) Name() string { return "ref-json" }
func (refCodec) ID() uint8    { return 200 }

func (c refCodec) Marshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	if c.fault == "clobber" { // writes from the start of dst's array
		return append(dst[:0], b...), nil
	}
	if c.fault == "lossy" { // drops everything: always encodes {}
		return append(dst, "{}"...), nil
	}
	return append(dst, b...), nil
}

func (c refCodec) Unmarshal(data []byte, v any) error {
	if c.fault == "panic" && len(data) > 0 && data[0] == 0xff {
		panic("unexpected byte")
	}
	if c.fault == "retain" {
		if m, ok := v.(*blob); ok { // keeps a view of the input
			if err := json.Unmarshal(data, m); err != nil {
				return err
			}
			i := strings.Index(string(data), m.Text)
			if i >= 0 {
				m.Raw = data[i : i+len(m.Text)]
			}
			return nil
		}
	}
	return json.Unmarshal(data, v)
}

type user struct {
	ID    int64             `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

type blob struct {
	Text string `json:"text"`
	Raw  []byte `json:"raw,omitempty"`
}

func runRefCodec(t *testing.T, c spi.Codec) {
	t.Run("blob", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(blob) },
			blob{Text: "hello", Raw: []byte("hello")},
			&blob{Text: strings.Repeat("kite ", 200), Raw: []byte(strings.Repeat("kite ", 200))},
		)
	})
	t.Run("user", func(t *testing.T) {
		spitest.TestCodec(t, c, func() any { return new(user) },
			user{ID: 1001, Name: "Ada", Tags: []string{"a", "b"}, Attrs: map[string]string{"zone": "eu"}},
			&user{},
		)
	})
}

func TestCodecReference(t *testing.T) { runRefCodec(t, refCodec{}) }

// TestCodecSuiteCatchesFaults runs the suite against each broken codec in
// a child process (a failing suite fails its *testing.T, which cannot be
// intercepted in-process) and checks it fails for the right reason.
func TestCodecSuiteCatchesFaults(t *testing.T) {
	if fault := os.Getenv("KITE_SPITEST_CODEC_FAULT"); fault != "" {
		runRefCodec(t, refCodec{fault: fault})
		return
	}
	if testing.Short() {
		t.Skip("spawns child test processes")
	}
	for fault, want := range map[string]string{
		"clobber": "Marshal clobbered dst",
		"lossy":   "round trip of",
		"retain":  "Unmarshal retained the input",
		"panic":   "panicked: unexpected byte",
	} {
		t.Run(fault, func(t *testing.T) {
			out := runChild(t, "TestCodecSuiteCatchesFaults", "KITE_SPITEST_CODEC_FAULT="+fault)
			if !strings.Contains(out, want) {
				t.Errorf("suite output for fault %q lacks %q:\n%s", fault, want, out)
			}
		})
	}
}

// runChild runs this test binary on one test with env set, requires it to
// fail, and returns its output.
func runChild(t *testing.T, test, env string) string {
	t.Helper()
	top, sub, _ := strings.Cut(test, "/")
	pattern := "^" + top + "$"
	if sub != "" {
		pattern += "/^" + sub + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+pattern, "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child with %s: want a failing exit, got %v\n%s", env, err, out)
	}
	return string(out)
}
