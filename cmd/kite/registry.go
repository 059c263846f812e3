package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

func init() {
	register(command{name: "registry", summary: "list services and instances through the configured registry", run: runRegistry})
}

const registryUsage = `Usage: kite registry ls [-f kite.hcl] [-json] [-timeout 5s] [registry] [service...]

ls lists the instances of services as seen through a registry of
kite.hcl: registry is a registry block label (or implementation name,
e.g. local); it may be left out when the file uses only one registry.
Without service names, the services named by the file's client blocks
(and server blocks) on that registry are listed: registries have no
portable way to enumerate services.

Exit status: 0 success, 1 the file or the registry failed, 2 usage error.

Flags:`

type registryListing struct {
	Registry string            `json:"registry"`
	Impl     string            `json:"impl"`
	Services []serviceInstance `json:"services"`
}

type serviceInstance struct {
	Service   string         `json:"service"`
	Instances []spi.Instance `json:"instances"`
	Error     string         `json:"error,omitempty"`
}

func runRegistry(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kite registry ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addCommonFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on resolving each service")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), registryUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "kite registry: want a subcommand: ls")
		fs.Usage()
		return exitUsage
	}
	switch args[0] {
	case "ls", "list":
	case "-h", "-help", "--help", "help":
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	default:
		fmt.Fprintf(stderr, "kite registry: unknown subcommand %q (want ls)\n", args[0])
		return exitUsage
	}
	pos, code, ok := parseArgs(fs, args[1:], stdout)
	if !ok {
		return code
	}

	st, code := cf.load(stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	f := st.File()

	used := registriesInUse(f)
	var ref string
	if len(pos) > 0 && isRegistryRef(f, st.Catalog(), pos[0]) {
		ref, pos = pos[0], pos[1:]
	} else {
		switch len(used) {
		case 0:
			fmt.Fprintf(stderr, "kite registry ls: %s uses no registry; name one (e.g. local)\n", f.Filename)
			return exitUsage
		case 1:
			ref = used[0]
		default:
			fmt.Fprintf(stderr, "kite registry ls: %s uses several registries (%s); name one first\n", f.Filename, strings.Join(used, ", "))
			return exitUsage
		}
	}
	services := pos
	if len(services) == 0 {
		services = servicesOn(f, ref)
		if len(services) == 0 {
			fmt.Fprintf(stderr, "kite registry ls: no client or server block of %s uses registry %q; name the services to list\n", f.Filename, ref)
			return exitUsage
		}
	}
	comp, _ := f.Component(spi.KindRegistry, ref)
	reg, err := st.Registry(ref)
	if err != nil {
		fmt.Fprintf(stderr, "kite registry ls: %v\n", err)
		return exitError
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := registryListing{Registry: ref, Impl: comp.Impl}
	failed := false
	for _, svc := range services {
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		ins, err := reg.Resolve(rctx, svc)
		cancel()
		si := serviceInstance{Service: svc, Instances: ins}
		if si.Instances == nil {
			si.Instances = []spi.Instance{}
		}
		if err != nil {
			failed = true
			si.Error = err.Error()
			fmt.Fprint(stderr, wrapText(fmt.Sprintf("kite registry ls: resolving %q in registry %q: %v", svc, ref, err), 100, "    "))
		}
		sort.Slice(si.Instances, func(i, j int) bool { return si.Instances[i].Addr < si.Instances[j].Addr })
		out.Services = append(out.Services, si)
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		fmt.Fprintf(stdout, "registry %q (%s)\n", ref, comp.Impl)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tADDR\tWEIGHT\tVERSION\tZONE\tTAGS\tMETADATA")
		for _, s := range out.Services {
			switch {
			case s.Error != "":
				// The error itself went to stderr, wrapped: in a cell it
				// would stretch the table to the width of the message.
				fmt.Fprintf(tw, "%s\t(error, see stderr)\t\t\t\t\t\n", s.Service)
			case len(s.Instances) == 0:
				fmt.Fprintf(tw, "%s\t(no instances)\t\t\t\t\t\n", s.Service)
			}
			for _, in := range s.Instances {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Service, in.Addr, in.EffectiveWeight(),
					orDash(in.Version), orDash(in.Zone), orDash(strings.Join(in.Tags, ",")), orDash(formatMeta(in.Metadata)))
			}
		}
		_ = tw.Flush()
	}
	if failed {
		return exitError
	}
	return exitOK
}

// registriesInUse lists the registry references of f: declared blocks
// and what servers and clients name (a bare implementation name counts).
func registriesInUse(f *config.File) []string {
	seen := map[string]bool{}
	var out []string
	add := func(r string) {
		if r != "" && r != config.NoRegistry && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, r := range f.Registries {
		add(r.Label)
	}
	for _, s := range f.Servers {
		add(s.Registry)
	}
	for _, c := range f.Clients {
		if len(c.Target) == 0 {
			add(c.Registry)
		}
	}
	sort.Strings(out)
	return out
}

func isRegistryRef(f *config.File, cat *spi.Catalog, s string) bool {
	for _, r := range registriesInUse(f) {
		if r == s {
			return true
		}
	}
	if _, ok := cat.Lookup(spi.KindRegistry, s); ok {
		return true
	}
	for _, p := range f.Plugins {
		if p.Kind == spi.KindRegistry && p.Name == s {
			return true
		}
	}
	return false
}

// servicesOn lists the services the file's clients (and servers) find or
// announce through registry ref.
func servicesOn(f *config.File, ref string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range f.Clients {
		if len(c.Target) == 0 && c.Registry == ref && !seen[c.Service] {
			seen[c.Service] = true
			out = append(out, c.Service)
		}
	}
	for _, s := range f.Servers {
		if s.Registry == ref && !seen[s.ServiceName] {
			seen[s.ServiceName] = true
			out = append(out, s.ServiceName)
		}
	}
	sort.Strings(out)
	return out
}

func formatMeta(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(parts, ",")
}

// wrapText breaks msg into lines of at most width bytes at spaces (a word
// longer than width stays whole), indenting continuation lines, and ends
// it with a newline.
func wrapText(msg string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for i, w := range strings.Fields(msg) {
		switch {
		case i == 0:
		case line+1+len(w) > width:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}
