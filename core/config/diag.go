package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Error is a configuration failure: the diagnostics with the sources they
// point into. Its Error() starts with "file:line:col: " of the first
// error so any message built from it names the position.
type Error struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// DiagnosticsError returns an *Error for diags when they hold an error,
// and nil otherwise. files supplies source lines for Format.
func DiagnosticsError(diags hcl.Diagnostics, files map[string]*hcl.File) error {
	if !diags.HasErrors() {
		return nil
	}
	return &Error{Diags: diags, Files: files}
}

func (e *Error) Error() string {
	var first *hcl.Diagnostic
	n := 0
	for _, d := range e.Diags {
		if d.Severity == hcl.DiagError {
			if first == nil {
				first = d
			}
			n++
		}
	}
	if first == nil {
		return "config: no error"
	}
	var b strings.Builder
	b.WriteString(diagPrefix(first))
	b.WriteString(first.Summary)
	if first.Detail != "" {
		b.WriteString(": ")
		b.WriteString(first.Detail)
	}
	if n > 1 {
		fmt.Fprintf(&b, " (and %d more error%s)", n-1, plural(n-1))
	}
	return b.String()
}

// Format writes every diagnostic with its source line and a caret.
func (e *Error) Format(w io.Writer) error { return FormatDiagnostics(w, e.Diags, e.Files) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func diagPrefix(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
}

// FormatDiagnostics writes diags compiler-style, one block per diagnostic:
//
//	kite.hcl:12:3: error: Unsupported argument
//	   12 |   timout = "1s"
//	      |   ^^^^^^
//	  An argument named "timout" is not expected here. Did you mean "timeout"?
//
// files (from Error.Files, or {filename: {Bytes: src}}) supplies the source
// lines; without it only the positions are printed. HCL's own
// DiagnosticTextWriter is not used because it prints "on FILE line N"
// without the column or a caret, which editors and grep cannot follow.
func FormatDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File) error {
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		fmt.Fprintf(bw, "%s%s: %s\n", diagPrefix(d), sev, d.Summary)
		if d.Subject != nil {
			if f := files[d.Subject.Filename]; f != nil {
				writeSnippet(bw, f.Bytes, *d.Subject)
			}
		}
		if d.Detail != "" {
			for _, line := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(bw, "  %s\n", line)
			}
		}
	}
	return bw.Flush()
}

// writeSnippet prints the subject's first line and a caret line under the
// subject (to the end of that line when the subject spans several).
func writeSnippet(w io.Writer, src []byte, r hcl.Range) {
	if r.Start.Byte < 0 || r.Start.Byte > len(src) {
		return
	}
	lineStart := bytes.LastIndexByte(src[:r.Start.Byte], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[r.Start.Byte:], '\n'); i >= 0 {
		lineEnd = r.Start.Byte + i
	}
	line := strings.TrimRight(string(src[lineStart:lineEnd]), "\r")
	if !utf8.ValidString(line) {
		line = strings.ToValidUTF8(line, "\uFFFD")
	}
	end := r.End.Byte
	if end > lineEnd || end < r.Start.Byte {
		end = lineEnd
	}
	// The pad keeps tabs so the caret lines up however the terminal
	// expands them; other characters become one space per rune.
	var pad strings.Builder
	for _, c := range string(src[lineStart:r.Start.Byte]) {
		if c == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	width := max(utf8.RuneCount(src[r.Start.Byte:end]), 1)
	num := fmt.Sprintf("%d", r.Start.Line)
	fmt.Fprintf(w, "  %s | %s\n", num, line)
	fmt.Fprintf(w, "  %s | %s%s\n", strings.Repeat(" ", len(num)), pad.String(), strings.Repeat("^", width))
}

// suggest returns the candidate closest to given within a small edit
// distance, or "".
func suggest(given string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(given, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// didYouMean renders a hint for an unknown name: the closest candidate if
// one is near, and the full list so the reader need not look it up.
func didYouMean(given string, candidates []string) string {
	if len(candidates) == 0 {
		return "None are available."
	}
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	list := `"` + strings.Join(sorted, `", "`) + `"`
	if s := suggest(given, sorted); s != "" {
		return fmt.Sprintf("Did you mean %q? Valid names: %s.", s, list)
	}
	return "Valid names: " + list + "."
}

// listValid appends the valid attribute and block names to HCL's
// "Unsupported argument/block type" diagnostics, which only carry a
// suggestion when one is close.
func listValid(diags hcl.Diagnostics, schema *hcl.BodySchema) {
	var attrs, blocks []string
	for _, a := range schema.Attributes {
		attrs = append(attrs, a.Name)
	}
	for _, b := range schema.Blocks {
		blocks = append(blocks, b.Type)
	}
	sort.Strings(attrs)
	sort.Strings(blocks)
	for _, d := range diags {
		switch d.Summary {
		case "Unsupported argument":
			if len(attrs) == 0 {
				d.Detail += " This block takes no arguments."
			} else {
				d.Detail += ` Valid arguments: "` + strings.Join(attrs, `", "`) + `".`
			}
		case "Unsupported block type":
			if len(blocks) == 0 {
				d.Detail += " This block takes no nested blocks."
			} else {
				d.Detail += ` Valid blocks: "` + strings.Join(blocks, `", "`) + `".`
			}
		}
	}
}
