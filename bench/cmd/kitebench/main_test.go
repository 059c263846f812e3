package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The orchestrator re-executes its own binary for servers and clients;
// under test that binary is the test binary, so a child marked by this
// variable runs main instead of the tests.
const childEnv = "KITEBENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	// The plugin host's spawner thread lives as long as the process, on
	// purpose (spi/plugin: parent-death signal).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/kiterpc/kite/spi/plugin.spawnLoop"))
}

// TestFiltersEndToEnd runs a tiny filters benchmark: a real plugin
// process (this binary) on both paths, and the round-trip floor.
func TestFiltersEndToEnd(t *testing.T) {
	t.Setenv(childEnv, "1")
	out := t.TempDir()
	err := filtersCmd([]string{"-d", "300ms", "-warmup", "100ms", "-rounds", "1", "-callers", "1,4",
		"-variants", "compiled,plugin,plugin-before-only,plugin-grpc", "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "filters.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1 | none |", "| 4 | plugin-before-only |", "| 4 | plugin-grpc |", "Floor, same run", "goal ≤ 100"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("filters.md lacks %q:\n%s", want, md)
		}
	}
	var runs []filterRun
	b, err := os.ReadFile(filepath.Join(out, "filters.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2*5 {
		t.Fatalf("%d runs, want 10", len(runs))
	}
	for _, r := range runs {
		if r.Calls == 0 || r.FirstErr != "" {
			t.Errorf("%s, %d callers: %d calls, first error %q", r.Variant, r.Callers, r.Calls, r.FirstErr)
		}
		if strings.HasPrefix(r.Variant, "plugin") && r.PlugCPU <= 0 {
			t.Errorf("%s, %d callers: no plugin CPU measured", r.Variant, r.Callers)
		}
	}
}

// TestRunEndToEnd runs a tiny benchmark through real processes and
// checks the files it writes.
func TestRunEndToEnd(t *testing.T) {
	t.Setenv(childEnv, "1")
	out := t.TempDir()
	err := runCmd([]string{"-d", "300ms", "-warmup", "100ms", "-systems", "kite,raw", "-workloads", "echo-128-c100,echo-1k-c1", "-pin", "off", "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### echo-128-c100", "### echo-1k-c1 ", "| kite |", "| raw |", "median round trip vs raw"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	var js struct {
		Groups []struct {
			Workload string
			Runs     map[string][]struct {
				Calls  int64   `json:"calls"`
				QPS    float64 `json:"qps"`
				P99    float64 `json:"p99_us"`
				Errors int64   `json:"errors"`
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Groups) != 2 {
		t.Fatalf("groups = %d", len(js.Groups))
	}
	for _, g := range js.Groups {
		for sys, runs := range g.Runs {
			if len(runs) != 1 || runs[0].Calls == 0 || runs[0].QPS <= 0 || runs[0].P99 <= 0 || runs[0].Errors != 0 {
				t.Errorf("%s/%s: %+v", g.Workload, sys, runs)
			}
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "chart.svg"))
	if err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Fatalf("chart.svg: %v", err)
	}
}

func TestUnknownNamesAreRefused(t *testing.T) {
	if _, err := selectWorkloads("echo-9k"); err == nil {
		t.Error("unknown workload accepted")
	}
	if _, err := selectSystems("kite,thrift"); err == nil {
		t.Error("unknown system accepted")
	}
	if ws, _ := selectWorkloads("all"); len(ws) != len(workloads) {
		t.Error("all does not select every workload")
	}
}
