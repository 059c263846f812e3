// Command testsummary reads `go test -json` on stdin, prints what a plain
// `go test` would (one "ok"/"FAIL"/"?" line per package, the output of
// failing tests and build errors in full) and ends with a summary:
// packages, tests run, passed, failed, skipped with each skip's reason,
// and the fuzz targets whose seed corpus ran. scripts/test.sh pipes the
// whole suite through it:
//
//	go test -json ./... | go run ./internal/testsummary -o .kite/test-summary.txt
//
// It exits 1 when any test, package or build failed (go test's own exit
// status says the same; the pipeline reports either).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

// testState is what is kept of one test while it runs.
type testState struct {
	out []string
}

// pkgState is one package's progress.
type pkgState struct {
	tests    map[string]*testState
	failed   []string // output of failed tests, in the order they ended
	pkgOut   []string // output not attributed to a test
	finished bool
}

// Skip is one skipped test and the reason it gave.
type Skip struct {
	Package, Test, Reason string
}

// Summary is the tally of a run.
type Summary struct {
	Packages, PackagesOK, PackagesFailed, PackagesNoTests int
	BuildFailures                                         int
	Run, Passed, Failed, Skipped                          int
	FuzzTargets                                           int // Fuzz* functions whose seed corpus ran
	Skips                                                 []Skip
	FailedTests                                           []string // "pkg TestName"
}

type summariser struct {
	w    io.Writer
	pkgs map[string]*pkgState
	s    Summary
}

func newSummariser(w io.Writer) *summariser {
	return &summariser{w: w, pkgs: map[string]*pkgState{}}
}

func (m *summariser) pkg(name string) *pkgState {
	p := m.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string]*testState{}}
		m.pkgs[name] = p
	}
	return p
}

// line handles one input line; lines that are not test2json events (a
// tool's own message) are passed through.
func (m *summariser) line(l string) {
	var e event
	if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &e) != nil || e.Action == "" {
		fmt.Fprintln(m.w, l)
		return
	}
	switch e.Action {
	case "build-output":
		fmt.Fprint(m.w, e.Output)
		return
	case "build-fail":
		m.s.BuildFailures++
		return
	}
	p := m.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.pkgOut = append(p.pkgOut, e.Output)
		case "pass", "fail", "skip":
			m.endPackage(e.Package, p, e.Action)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &testState{}
		p.tests[e.Test] = t
	}
	switch e.Action {
	case "run":
		m.s.Run++
		if !strings.Contains(e.Test, "/") && strings.HasPrefix(e.Test, "Fuzz") {
			m.s.FuzzTargets++
		}
	case "output":
		if !strings.HasPrefix(e.Output, "=== ") { // -json implies -v; a plain run has no "=== RUN"
			t.out = append(t.out, e.Output)
		}
	case "pass":
		m.s.Passed++
		delete(p.tests, e.Test)
	case "fail":
		m.s.Failed++
		m.s.FailedTests = append(m.s.FailedTests, e.Package+" "+e.Test)
		p.failed = append(p.failed, t.out...)
		delete(p.tests, e.Test)
	case "skip":
		m.s.Skipped++
		m.s.Skips = append(m.s.Skips, Skip{e.Package, e.Test, skipReason(t.out)})
		delete(p.tests, e.Test)
	}
}

// skipReason picks the message a skipped test logged: its last output
// line that is not go test's own bookkeeping ("=== RUN", "--- SKIP").
func skipReason(out []string) string {
	reason := ""
	for _, l := range out {
		for _, s := range strings.Split(strings.TrimRight(l, "\n"), "\n") {
			s = strings.TrimSpace(s)
			if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- ") {
				continue
			}
			reason = s
		}
	}
	if reason == "" {
		return "(no reason given)"
	}
	return reason
}

func (m *summariser) endPackage(name string, p *pkgState, action string) {
	if p.finished {
		return
	}
	p.finished = true
	m.s.Packages++
	switch action {
	case "pass":
		m.s.PackagesOK++
		for _, l := range p.pkgOut { // "ok  \tpkg\t1.2s", coverage lines
			if l != "PASS\n" {
				fmt.Fprint(m.w, l)
			}
		}
	case "skip":
		m.s.PackagesNoTests++
		for _, l := range p.pkgOut {
			fmt.Fprint(m.w, l)
		}
	default:
		m.s.PackagesFailed++
		for _, l := range p.failed {
			fmt.Fprint(m.w, l)
		}
		// Tests that never ended (a panic or timeout killed the binary).
		var open []string
		for n := range p.tests {
			open = append(open, n)
		}
		sort.Strings(open)
		for _, n := range open {
			for _, l := range p.tests[n].out {
				fmt.Fprint(m.w, l)
			}
		}
		for _, l := range p.pkgOut {
			fmt.Fprint(m.w, l)
		}
	}
	p.tests, p.failed, p.pkgOut = nil, nil, nil
}

// failed reports whether anything failed.
func (s *Summary) failed() bool {
	return s.Failed > 0 || s.PackagesFailed > 0 || s.BuildFailures > 0
}

// write prints the summary block.
func (s *Summary) write(w io.Writer) {
	fmt.Fprintf(w, "test summary: %d packages (%d ok, %d failed, %d without tests), %d build failures\n",
		s.Packages, s.PackagesOK, s.PackagesFailed, s.PackagesNoTests, s.BuildFailures)
	fmt.Fprintf(w, "  tests run: %d (subtests included): %d passed, %d failed, %d skipped\n",
		s.Run, s.Passed, s.Failed, s.Skipped)
	fmt.Fprintf(w, "  fuzz targets whose seed corpus ran: %d\n", s.FuzzTargets)
	for _, f := range s.FailedTests {
		fmt.Fprintf(w, "  FAILED %s\n", f)
	}
	if len(s.Skips) > 0 {
		fmt.Fprintf(w, "  skipped (%d):\n", len(s.Skips))
		sort.Slice(s.Skips, func(i, j int) bool {
			a, b := s.Skips[i], s.Skips[j]
			if a.Package != b.Package {
				return a.Package < b.Package
			}
			return a.Test < b.Test
		})
		for _, k := range s.Skips {
			fmt.Fprintf(w, "    %s %s: %s\n", k.Package, k.Test, k.Reason)
		}
	}
}

func run(in io.Reader, out io.Writer, summaryPath string) (Summary, error) {
	m := newSummariser(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		m.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return m.s, err
	}
	// Packages whose end never came (the go command was killed).
	var names []string
	for n, p := range m.pkgs {
		if !p.finished {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		m.endPackage(n, m.pkgs[n], "fail")
	}
	fmt.Fprintln(out)
	m.s.write(out)
	if summaryPath != "" {
		f, err := os.Create(summaryPath)
		if err != nil {
			return m.s, err
		}
		m.s.write(f)
		if err := f.Close(); err != nil {
			return m.s, err
		}
	}
	return m.s, nil
}

func main() {
	outPath := flag.String("o", "", "also write the summary block to this file")
	flag.Parse()
	s, err := run(os.Stdin, os.Stdout, *outPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if s.failed() {
		os.Exit(1)
	}
}
