package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiterpc/kite/bench/internal/measure"
)

func TestMedianPerField(t *testing.T) {
	rs := []measure.Result{
		{QPS: 10, P99: 300, CPUServer: 5},
		{QPS: 30, P99: 100, CPUServer: 7},
		{QPS: 20, P99: 200, CPUServer: 9},
	}
	m := Median(rs)
	if m.QPS != 20 || m.P99 != 200 || m.CPUServer != 7 {
		t.Fatalf("median = %+v", m)
	}
	even := Median(rs[:2])
	if even.QPS != 20 || even.P99 != 200 {
		t.Fatalf("even median = %+v", even)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -4200: "-4,200"} {
		if got := Thousands(in); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestTargets(t *testing.T) {
	g := &Group{Workload: "echo-1k-c100", Systems: []string{"kite", "grpc", "netrpc", "raw"}, Runs: map[string][]measure.Result{
		"kite":   {{QPS: 90, P99: 10, CPUServer: 12}},
		"grpc":   {{QPS: 30, P99: 25, CPUServer: 40}},
		"netrpc": {{QPS: 70, P99: 20, CPUServer: 20}},
		"raw":    {{QPS: 100, P99: 9, CPUServer: 10}},
	}}
	ts := Targets([]*Group{g}, "kite")
	met := map[string]bool{}
	for _, x := range ts {
		met[x.Name] = x.Met
	}
	want := map[string]bool{
		"QPS vs gRPC-go (1 KiB, c=100)":         true,  // 3.0×
		"QPS vs net/rpc (1 KiB, c=100)":         false, // 1.29×
		"QPS vs raw framing (1 KiB, c=100)":     true,  // 0.9×
		"p99 vs gRPC-go (1 KiB, c=100)":         true,  // 0.4×
		"server CPU/call vs raw (1 KiB, c=100)": true,  // 1.2×
	}
	for k, v := range want {
		if met[k] != v {
			t.Errorf("%s: met=%v, want %v", k, met[k], v)
		}
	}
	if last := ts[len(ts)-1]; !last.Absent {
		t.Errorf("c=1 target should be absent without that workload: %+v", last)
	}
	var b bytes.Buffer
	TargetTable(&b, ts)
	if !strings.Contains(b.String(), "not measured") {
		t.Errorf("table lacks the absent target:\n%s", b.String())
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	g := &Group{Workload: "echo <1k>", Systems: []string{"kite", "grpc"}, Runs: map[string][]measure.Result{
		"kite": {{QPS: 50000, P99: 1000}}, "grpc": {{QPS: 20000, P99: 9000}},
	}}
	var b bytes.Buffer
	SVG(&b, []*Group{g})
	s := b.String()
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(strings.TrimSpace(s), "</svg>") {
		t.Fatalf("not an svg document")
	}
	if strings.Contains(s, "<1k>") || !strings.Contains(s, "&lt;1k&gt;") {
		t.Fatalf("labels are not escaped")
	}
	if !strings.Contains(s, "50,000") {
		t.Fatalf("missing QPS label")
	}
}

func TestDefaultPathTargets(t *testing.T) {
	g := &Group{Workload: "echo-1k-c100", Runs: map[string][]measure.Result{
		"kite":         {{QPS: 100, P99: 10, CPUClient: 4, CPUServer: 4}},
		"kite-json":    {{QPS: 40, P99: 30, CPUClient: 14, CPUServer: 14}},
		"kite-default": {{QPS: 79, P99: 12, CPUClient: 4, CPUServer: 6}},
		"kite-tls":     {{QPS: 70, P99: 14, CPUClient: 6, CPUServer: 6}},
		"grpc":         {{QPS: 30, P99: 40}},
		"raw":          {{QPS: 500, P99: 1}}, // not a Kite configuration: not "the fastest Kite"
	}}
	ts := DefaultPathTargets([]*Group{g})
	if len(ts) != 5 {
		t.Fatalf("want 5 targets, got %+v", ts)
	}
	for i, want := range []struct {
		met bool
		got string
	}{
		{false, "0.79× (kite-default 79.0 vs kite 100)"},            // just short of 0.8
		{true, "0.80× (kite-default 10.0 vs kite 8.0 µs CPU/call)"}, // 8 vs 10 µs
		{true, "0.30× (kite-default 12.0 vs grpc 40.0)"},            // exactly 0.3
		{true, "0.70× (kite-tls 70.0 vs kite 100)"},                 // exactly 0.7
		{false, "0.67× (kite-tls 12.0 vs kite 8.0 µs CPU/call)"},    // 8 vs 12 µs
	} {
		if ts[i].Met != want.met || ts[i].Got != want.got {
			t.Errorf("%s: got %q met=%v, want %q met=%v", ts[i].Name, ts[i].Got, ts[i].Met, want.got, want.met)
		}
	}
	// Without the systems, each goal says it was not measured.
	for _, x := range DefaultPathTargets([]*Group{{Workload: "echo-1k-c100", Runs: map[string][]measure.Result{"kite": {{QPS: 1}}}}}) {
		if !x.Absent {
			t.Errorf("%s should be absent", x.Name)
		}
	}
}
