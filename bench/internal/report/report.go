// Package report turns client results into medians, markdown tables,
// target checks and an SVG chart.
package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/kiterpc/kite/bench/internal/measure"
)

// Group is one workload's results: per system, one result per round.
type Group struct {
	Workload string
	Systems  []string // presentation order
	Runs     map[string][]measure.Result
}

// Median returns a result whose every numeric field is the median of
// that field over rs (fields are not taken from one run: each metric is
// summarised independently, as benchmark reports usually do).
func Median(rs []measure.Result) measure.Result {
	if len(rs) == 0 {
		return measure.Result{}
	}
	out := rs[0]
	f := func(get func(*measure.Result) float64) float64 {
		v := make([]float64, len(rs))
		for i := range rs {
			v[i] = get(&rs[i])
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	out.QPS = f(func(r *measure.Result) float64 { return r.QPS })
	out.P50 = f(func(r *measure.Result) float64 { return r.P50 })
	out.P90 = f(func(r *measure.Result) float64 { return r.P90 })
	out.P99 = f(func(r *measure.Result) float64 { return r.P99 })
	out.P999 = f(func(r *measure.Result) float64 { return r.P999 })
	out.Max = f(func(r *measure.Result) float64 { return r.Max })
	out.CPUClient = f(func(r *measure.Result) float64 { return r.CPUClient })
	out.CPUServer = f(func(r *measure.Result) float64 { return r.CPUServer })
	out.AllocsClient = f(func(r *measure.Result) float64 { return r.AllocsClient })
	out.AllocsServer = f(func(r *measure.Result) float64 { return r.AllocsServer })
	out.WritesClient = f(func(r *measure.Result) float64 { return r.WritesClient })
	out.WritesServer = f(func(r *measure.Result) float64 { return r.WritesServer })
	out.RSSClient = int64(f(func(r *measure.Result) float64 { return float64(r.RSSClient) }))
	out.RSSServer = int64(f(func(r *measure.Result) float64 { return float64(r.RSSServer) }))
	var errs int64
	for _, r := range rs {
		errs += r.Errors
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
	}
	out.Errors = errs
	return out
}

// Medians returns the median per system of g.
func (g *Group) Medians() map[string]measure.Result {
	m := make(map[string]measure.Result, len(g.Runs))
	for s, rs := range g.Runs {
		m[s] = Median(rs)
	}
	return m
}

// Table writes g as a markdown table of medians.
func Table(w io.Writer, g *Group) {
	med := g.Medians()
	rounds := 0
	for _, rs := range g.Runs {
		rounds = max(rounds, len(rs))
	}
	fmt.Fprintf(w, "### %s (median of %d round(s))\n\n", g.Workload, rounds)
	fmt.Fprintln(w, "| system | QPS | p50 µs | p90 µs | p99 µs | p99.9 µs | CPU µs/call client | CPU µs/call server | allocs/call client | allocs/call server | writes/call client | writes/call server | RSS MiB client | RSS MiB server | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range g.Systems {
		r, ok := med[s]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.0f | %.0f | %d |\n",
			s, Thousands(r.QPS), Thousands(r.P50), Thousands(r.P90), Thousands(r.P99), Thousands(r.P999),
			r.CPUClient, r.CPUServer, r.AllocsClient, r.AllocsServer, r.WritesClient, r.WritesServer,
			float64(r.RSSClient)/(1<<20), float64(r.RSSServer)/(1<<20), r.Errors)
	}
	fmt.Fprintln(w)
	for _, s := range g.Systems {
		if r, ok := med[s]; ok && r.Errors > 0 {
			fmt.Fprintf(w, "- %s: first error: %s\n", s, r.FirstErr)
		}
	}
}

// num formats small figures with one decimal and large ones as integers.
func num(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return Thousands(v)
}

// Thousands formats v rounded to an integer with thousands separators.
func Thousands(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Target is one issue-6 target evaluated on a run.
type Target struct {
	Name   string
	Want   string
	Got    string
	Met    bool
	Absent bool // the run lacks the systems or workload needed
}

// Targets evaluates the issue-6 targets on the median results: the
// 1 KiB c=100 workload for the throughput, latency and CPU targets and
// the 1 KiB c=1 workload for the round-trip target.
func Targets(groups []*Group, kite string) []Target {
	find := func(name string) map[string]measure.Result {
		for _, g := range groups {
			if g.Workload == name {
				return g.Medians()
			}
		}
		return nil
	}
	var out []Target
	c100 := find("echo-1k-c100")
	ratio := func(name, other, want string, min float64, get func(measure.Result) float64, lower bool) {
		t := Target{Name: name, Want: want}
		k, ok1 := c100[kite]
		o, ok2 := c100[other]
		if !ok1 || !ok2 || get(o) == 0 {
			t.Absent = true
			out = append(out, t)
			return
		}
		r := get(k) / get(o)
		t.Got = fmt.Sprintf("%.2f× (%s vs %s)", r, num(get(k)), num(get(o)))
		if lower {
			t.Met = r <= min
		} else {
			t.Met = r >= min
		}
		out = append(out, t)
	}
	qps := func(r measure.Result) float64 { return r.QPS }
	ratio("QPS vs gRPC-go (1 KiB, c=100)", "grpc", "≥ 3.0×", 3.0, qps, false)
	ratio("QPS vs net/rpc (1 KiB, c=100)", "netrpc", "≥ 1.3×", 1.3, qps, false)
	ratio("QPS vs raw framing (1 KiB, c=100)", "raw", "≥ 0.9×", 0.9, qps, false)
	ratio("p99 vs gRPC-go (1 KiB, c=100)", "grpc", "≤ 0.4×", 0.4, func(r measure.Result) float64 { return r.P99 }, true)
	ratio("server CPU/call vs raw (1 KiB, c=100)", "raw", "≤ 1.2×", 1.2, func(r measure.Result) float64 { return r.CPUServer }, true)
	c100 = find("echo-1k-c1")
	ratio("median round trip vs raw (1 KiB, c=1)", "raw", "≤ 1.2×", 1.2, func(r measure.Result) float64 { return r.P50 }, true)
	return out
}

// DefaultPathTargets evaluates the issue-15 goals on the 1 KiB c=100
// medians: the README's default stack ("kite-default") against the
// fastest other Kite configuration of the run (systems named kite*), its
// p99 against gRPC-go's, and Kite over TLS ("kite-tls") against the same
// configuration in plaintext ("kite").
func DefaultPathTargets(groups []*Group) []Target {
	var c100 map[string]measure.Result
	for _, g := range groups {
		if g.Workload == "echo-1k-c100" {
			c100 = g.Medians()
		}
	}
	var out []Target
	add := func(name, want string, sys, other string, get func(measure.Result) float64, limit float64, lower bool) {
		t := Target{Name: name, Want: want}
		n, ok1 := c100[sys]
		d, ok2 := c100[other]
		if !ok1 || !ok2 || get(d) == 0 {
			t.Absent = true
			out = append(out, t)
			return
		}
		r := get(n) / get(d)
		t.Got = fmt.Sprintf("%.2f× (%s %s vs %s %s)", r, sys, num(get(n)), other, num(get(d)))
		t.Met = r >= limit
		if lower {
			t.Met = r <= limit
		}
		out = append(out, t)
	}
	// On a shared machine QPS swings by ±50% between rounds; CPU per call
	// (client + server) is steady: its ratio is the QPS ratio the pinned
	// processes would show with their cores to themselves.
	addCPU := func(name, want, sys, other string, limit float64) {
		t := Target{Name: name, Want: want}
		n, ok1 := c100[sys]
		d, ok2 := c100[other]
		cn, cd := n.CPUClient+n.CPUServer, d.CPUClient+d.CPUServer
		if !ok1 || !ok2 || cn == 0 || cd == 0 {
			t.Absent = true
			out = append(out, t)
			return
		}
		r := cd / cn
		t.Got = fmt.Sprintf("%.2f× (%s %s vs %s %s µs CPU/call)", r, sys, num(cn), other, num(cd))
		t.Met = r >= limit
		out = append(out, t)
	}
	qps := func(r measure.Result) float64 { return r.QPS }
	fastest, best := "", 0.0
	for name, r := range c100 {
		if strings.HasPrefix(name, "kite") && name != "kite-default" && r.QPS > best {
			fastest, best = name, r.QPS
		}
	}
	add("QPS, README default stack vs fastest Kite (1 KiB, c=100)", "≥ 0.8×", "kite-default", fastest, qps, 0.8, false)
	addCPU("  same, by CPU per call (client + server)", "≥ 0.8×", "kite-default", fastest, 0.8)
	add("p99, README default stack vs gRPC-go (1 KiB, c=100)", "≤ 0.3×", "kite-default", "grpc", func(r measure.Result) float64 { return r.P99 }, 0.3, true)
	add("QPS, Kite over TLS vs plaintext (1 KiB, c=100)", "≥ 0.7×", "kite-tls", "kite", qps, 0.7, false)
	addCPU("  same, by CPU per call (client + server)", "≥ 0.7×", "kite-tls", "kite", 0.7)
	return out
}

// TargetTable writes ts as markdown.
func TargetTable(w io.Writer, ts []Target) {
	fmt.Fprintln(w, "| target | wanted | measured | status |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, t := range ts {
		st := "not met"
		switch {
		case t.Absent:
			st, t.Got = "not measured", "—"
		case t.Met:
			st = "met"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, st)
	}
	fmt.Fprintln(w)
}
