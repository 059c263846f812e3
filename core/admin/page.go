package admin

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/kiterpc/kite/core/resilience"
	"github.com/kiterpc/kite/spi"
)

// pageData is what the status page template renders.
type pageData struct {
	Snapshot
	Now       time.Time
	Uptime    time.Duration
	Host      string
	Pid       int
	GoVersion string
	Pprof     bool
	Healthy   bool
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.SnapshotTimeout)
	defer cancel()
	snap := s.opts.Source.Snapshot(ctx)
	host, _ := os.Hostname()
	d := pageData{
		Snapshot: snap, Now: time.Now(), Host: host, Pid: os.Getpid(),
		GoVersion: runtime.Version(), Pprof: s.opts.Pprof, Healthy: true,
	}
	if !snap.Started.IsZero() {
		d.Uptime = d.Now.Sub(snap.Started).Truncate(time.Second)
	}
	for _, sv := range snap.Servers {
		if sv.State != StateServing || sv.Status != "SERVING" {
			d.Healthy = false
		}
	}
	// Render to a buffer first so a template error is a clean 500, not
	// half a page.
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		s.log.Error("rendering the status page", "error", err)
		http.Error(w, "rendering the status page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

var pageFuncs = template.FuncMap{
	"statusClass": func(s string) string {
		switch strings.ToUpper(s) {
		case "SERVING", "CLOSED", "OK":
			return "ok"
		case "NOT_SERVING", "OPEN", "STOPPED":
			return "bad"
		}
		return "warn"
	},
	"stateClass": func(s string) string {
		switch s {
		case StateServing:
			return "ok"
		case StateStopped:
			return "bad"
		}
		return "warn"
	},
	"breakerClass": func(st resilience.State) string {
		switch st {
		case resilience.Closed:
			return "ok"
		case resilience.Open:
			return "bad"
		}
		return "warn"
	},
	"count": func(n int64) string {
		if n < 0 {
			return "n/a"
		}
		return fmt.Sprint(n)
	},
	"shortSHA": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"weight":  func(in spi.Instance) int { return in.EffectiveWeight() },
	"join":    strings.Join,
	"int64":   func(n int) int64 { return int64(n) },
	"sub":     func(a, b uint64) uint64 { return a - b },
	"ts":      func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
	"until":   func(t time.Time) string { return time.Until(t).Truncate(time.Millisecond).String() },
	"future":  func(t time.Time) bool { return time.Until(t) > 0 },
	"fmtf":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"metaStr": metaString,
	"breakerAddrs": func(m map[string]resilience.BreakerStats) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	},
	"breakerOf": func(m map[string]resilience.BreakerStats, k string) resilience.BreakerStats { return m[k] },
}

func metaString(in spi.Instance) string {
	var parts []string
	if in.Version != "" {
		parts = append(parts, "version="+in.Version)
	}
	if in.Zone != "" {
		parts = append(parts, "zone="+in.Zone)
	}
	if len(in.Tags) > 0 {
		parts = append(parts, "tags="+strings.Join(in.Tags, ","))
	}
	keys := make([]string, 0, len(in.Metadata))
	for k := range in.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+in.Metadata[k])
	}
	return strings.Join(parts, " ")
}

var pageTemplate = template.Must(template.New("status").Funcs(pageFuncs).Parse(pageHTML))

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>Kite · {{.Host}} · pid {{.Pid}}</title>
<style>
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff;
        --ok:#067647; --okbg:#dcfae6; --bad:#b42318; --badbg:#fee4e2; --warn:#b54708; --warnbg:#fef0c7; --accent:#2e5aac; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
header { background:#15213b; color:#fff; padding:16px 28px; display:flex; align-items:baseline; gap:24px; flex-wrap:wrap; }
header h1 { margin:0; font-size:20px; letter-spacing:.3px; }
header .meta { color:#c4cbe0; font-size:13px; }
header .health { margin-left:auto; }
main { padding:20px 28px 40px; max-width:1280px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; margin:0 0 18px; padding:14px 18px 16px; }
h2 { font-size:16px; margin:0 0 10px; color:var(--accent); }
h3 { font-size:14px; margin:14px 0 6px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 10px 5px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
tr:last-child td { border-bottom:0; }
code, .mono { font-family:ui-monospace,"SFMono-Regular",Menlo,"DejaVu Sans Mono",monospace; font-size:12.5px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.ok { color:var(--ok); background:var(--okbg); }
.bad { color:var(--bad); background:var(--badbg); }
.warn { color:var(--warn); background:var(--warnbg); }
.muted { color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:8px; margin:6px 0 10px; }
.stat { border:1px solid var(--line); border-radius:6px; padding:6px 10px; }
.stat b { display:block; font-size:18px; overflow-wrap:anywhere; }
.stat b.mono { font-size:15px; padding:2px 0; }
.stat span { color:var(--muted); font-size:12px; }
ul.methods { margin:0; padding:0; list-style:none; }
ul.methods li { display:inline-block; margin:0 6px 4px 0; padding:1px 8px; border:1px solid var(--line); border-radius:4px; background:#fafbfc; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; padding:0 28px 24px; }
a { color:var(--accent); }
</style>
</head>
<body>
<header>
  <h1>Kite</h1>
  <span class="meta">{{.Host}} · pid {{.Pid}} · {{.GoVersion}}{{if .Uptime}} · up {{.Uptime}}{{end}}{{if .Config}} · <code>{{.Config}}</code>{{end}}</span>
  <span class="health">{{if .Healthy}}<span class="badge ok">healthy</span>{{else}}<span class="badge bad">not serving</span>{{end}}</span>
</header>
<main>

<section id="servers">
<h2>Servers</h2>
{{range .Servers}}
<h3>{{.Name}} <span class="badge {{stateClass .State}}">{{.State}}</span> <span class="badge {{statusClass .Status}}">{{.Status}}</span></h3>
<div class="grid">
  <div class="stat"><b class="mono">{{.Addr}}</b><span>address (listen {{.Listen}})</span></div>
  <div class="stat"><b>{{.Service}}</b><span>registered as · registry {{.Registry}}</span></div>
  <div class="stat"><b>{{count (int64 .Conns)}}</b><span>connections</span></div>
  <div class="stat"><b>{{count .InFlight}}</b><span>calls in flight</span></div>
</div>
<table>
<tr><th style="width:18%">service</th><th style="width:14%">health</th><th>methods</th></tr>
{{range .Services}}
<tr><td><b>{{.Name}}</b></td><td><span class="badge {{statusClass .Status}}">{{.Status}}</span></td>
<td><ul class="methods">{{range .Methods}}<li class="mono">{{.}}</li>{{end}}</ul></td></tr>
{{end}}
</table>
{{else}}
<p class="empty">No server in this process.</p>
{{end}}
</section>

<section id="clients">
<h2>Clients</h2>
{{range .Clients}}
<h3>{{.Name}} <span class="muted">→ {{.Service}}</span></h3>
<div class="grid">
  <div class="stat"><b>{{.Balancer}}</b><span>balancer</span></div>
  <div class="stat"><b>{{if .Targets}}targets{{else}}{{.Registry}}{{end}}</b><span>discovery</span></div>
  <div class="stat"><b>{{.Stats.Calls}}</b><span>calls</span></div>
  <div class="stat"><b>{{.Stats.Retries}}</b><span>retries</span></div>
  <div class="stat"><b>{{.Stats.BudgetExhausted}}</b><span>retries refused by budget</span></div>
  <div class="stat"><b>{{fmtf .Stats.BudgetTokens}}</b><span>budget tokens</span></div>
  <div class="stat"><b>{{.Stats.Ejections}}</b><span>ejections</span></div>
  <div class="stat"><b>{{.Stats.Restorations}}</b><span>restorations</span></div>
</div>
<table>
<tr><th>instance</th><th>weight</th><th>labels</th><th>breaker</th></tr>
{{$b := .Stats.Breakers}}
{{range .Instances}}
{{$st := breakerOf $b .Addr}}
<tr><td class="mono">{{.Addr}}</td><td>{{weight .}}</td><td class="mono">{{metaStr .}}</td>
<td><span class="badge {{breakerClass $st.State}}">{{$st.State}}</span>{{if future $st.OpenUntil}} <span class="muted">for {{until $st.OpenUntil}}</span>{{end}}{{if $st.Ejections}} <span class="muted">({{$st.Ejections}} ejections)</span>{{end}}</td></tr>
{{else}}
<tr><td colspan="4" class="empty">no instances</td></tr>
{{end}}
</table>
{{else}}
<p class="empty">No client in this process.</p>
{{end}}
</section>

<section id="registries">
<h2>Registry view</h2>
{{range .Registries}}
<h3>{{.Label}} <span class="muted">({{.Impl}})</span></h3>
<table>
<tr><th style="width:18%">service</th><th>instances</th></tr>
{{range .Services}}
<tr><td><b>{{.Service}}</b></td><td>
{{if .Error}}<span class="badge bad">error</span> <span class="mono">{{.Error}}</span>{{else}}
{{range .Instances}}<div class="mono">{{.Addr}} <span class="muted">w={{weight .}} {{metaStr .}}</span></div>{{else}}<span class="empty">none</span>{{end}}
{{end}}</td></tr>
{{end}}
</table>
{{else}}
<p class="empty">No registry in use.</p>
{{end}}
</section>

<section id="plugins">
<h2>Plugins</h2>
<table>
<tr><th>kind</th><th>name</th><th>version</th><th>source</th><th>sha256</th></tr>
{{range .Plugins}}
<tr><td>{{.Kind}}</td><td><b>{{.Name}}</b></td><td class="mono">{{.Version}}</td>
<td class="mono">{{.Source}}{{if .Pid}} <span class="muted">(pid {{.Pid}})</span>{{end}}</td>
<td class="mono" title="{{.SHA256}}">{{if .SHA256}}{{shortSHA .SHA256}}{{else}}<span class="muted">—</span>{{end}}</td></tr>
{{else}}
<tr><td colspan="5" class="empty">none</td></tr>
{{end}}
</table>
</section>

</main>
<footer>Rendered {{ts .Now}} · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a>{{if .Pprof}} · <a href="/debug/pprof/">/debug/pprof/</a>{{end}}</footer>
</body>
</html>
`
