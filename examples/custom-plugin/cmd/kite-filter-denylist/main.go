// Command kite-filter-denylist is a third-party Kite filter plugin: it
// refuses calls to listed methods, or from listed callers, with
// PermissionDenied before they reach the handler. It is written the way
// an outside team would write one: a single main package that imports
// only spi and the plugin SDK, built into its own binary and declared in
// kite.hcl with its path and sha256.
package main

import (
	"context"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
)

// Entry describes the plugin; the host reads Version, Doc and Schema
// through the bridge (`kite plugins` shows them).
var Entry = spi.Entry{
	Kind:    spi.KindFilter,
	Name:    "denylist",
	Version: "1.0.0",
	Doc:     "refuses calls to listed methods or from listed callers",
	Schema: spi.Schema{
		{Name: "methods", Type: spi.TypeStringList, Doc: `methods to refuse: "Service.Method", or "Service.*" for a whole service`},
		{Name: "callers", Type: spi.TypeStringList, Doc: `callers to refuse, matched against the "kite-caller" metadata`},
		{Name: "message", Type: spi.TypeString, Doc: `message of the refusal (default "denied by policy")`},
	},
	New: newDenylist,
}

func main() { plugin.Serve(Entry) }

type config struct {
	Methods []string `json:"methods"`
	Callers []string `json:"callers"`
	Message string   `json:"message"`
}

// denylist is an spi.Filter. Served out of process, the bridge runs its
// Wrap around a stand-in for the rest of the chain: the plugin decides
// from the method, side, peer and metadata, which is all a deny-list
// needs (it never sees request or response values).
type denylist struct {
	methods  map[string]bool
	services map[string]bool
	callers  map[string]bool
	message  string
}

func newDenylist(cfg spi.Config) (any, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	d := &denylist{methods: map[string]bool{}, services: map[string]bool{}, callers: map[string]bool{}, message: c.Message}
	if d.message == "" {
		d.message = "denied by policy"
	}
	for _, m := range c.Methods {
		svc, method, ok := spi.SplitMethod(m) // "eco.v1.Inventory.*" → eco.v1.Inventory
		if !ok || svc == "" || method == "" {
			return nil, spi.Errorf(spi.InvalidArgument, `denylist: method %q is not "Service.Method" or "Service.*"`, m)
		}
		if method == "*" {
			d.services[svc] = true
		} else {
			d.methods[m] = true
		}
	}
	for _, c := range c.Callers {
		d.callers[c] = true
	}
	return d, nil
}

func (d *denylist) denied(call *spi.Call) bool {
	if d.methods[call.Method] {
		return true
	}
	if svc, _, ok := spi.SplitMethod(call.Method); ok && d.services[svc] {
		return true
	}
	return len(d.callers) > 0 && d.callers[call.Meta.Get(spi.MetaCaller)]
}

func (d *denylist) Wrap(next spi.Invoker) spi.Invoker {
	return func(ctx context.Context, call *spi.Call) error {
		if d.denied(call) {
			return spi.Errorf(spi.PermissionDenied, "%s: %s", call.Method, d.message)
		}
		return next(ctx, call)
	}
}
