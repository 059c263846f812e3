package report

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// SVG writes a bar chart per workload: QPS on the left, p99 latency on
// the right, one bar per system. Plain SVG, no external tools.
func SVG(w io.Writer, groups []*Group) {
	const (
		width   = 960
		label   = 110
		barArea = 300
		gap     = 60
		rowH    = 20
		headH   = 46
	)
	height := 30
	for _, g := range groups {
		height += headH + rowH*len(present(g)) + 20
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">Kite benchmark: QPS (higher is better) and p99 latency (lower is better)</text>`+"\n")
	y := 30
	for _, g := range groups {
		med := g.Medians()
		sys := present(g)
		var maxQ, maxP float64
		for _, s := range sys {
			maxQ = max(maxQ, med[s].QPS)
			maxP = max(maxP, med[s].P99)
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y+18, html.EscapeString(g.Workload))
		x1 := label
		x2 := label + barArea + gap + label
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">QPS</text><text x="%d" y="%d" fill="#555">p99 µs</text>`+"\n", x1, y+36, x2, y+36)
		y += headH
		for _, s := range sys {
			r := med[s]
			color := "#9aa5b1"
			if strings.HasPrefix(s, "kite") {
				color = "#1f77b4"
			} else if s == "raw" {
				color = "#6b7785"
			}
			qw := scale(r.QPS, maxQ, barArea)
			pw := scale(r.P99, maxP, barArea)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, x1-6, y+14, html.EscapeString(s))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, x1, y+3, qw, rowH-6, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222">%s</text>`, x1+qw+4, y+14, Thousands(r.QPS))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, x2-6, y+14, html.EscapeString(s))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, x2, y+3, pw, rowH-6, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222">%s</text>`+"\n", x2+pw+4, y+14, Thousands(r.P99))
			y += rowH
		}
		y += 20
	}
	b.WriteString("</svg>\n")
	_, _ = io.WriteString(w, b.String())
}

func present(g *Group) []string {
	var out []string
	for _, s := range g.Systems {
		if len(g.Runs[s]) > 0 {
			out = append(out, s)
		}
	}
	return out
}

func scale(v, maxV float64, width int) int {
	if maxV <= 0 || v <= 0 {
		return 0
	}
	return max(1, int(v/maxV*float64(width)+0.5))
}
