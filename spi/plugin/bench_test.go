package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin/internal/testplugins"
)

// The benchmarks measure what one call costs through the bridge next to
// the same implementation compiled in. Run them with
//
//	go test -run '^$' -bench . -benchtime=200ms ./spi/plugin/
//
// Figures are in docs/PLUGINS.md.

type benchMsg struct {
	ID    int64             `json:"id"`
	Name  string            `json:"name"`
	Email string            `json:"email"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}

var benchValue = benchMsg{ID: 1001, Name: "Ann Example", Email: "ann@example.com",
	Tags: []string{"admin", "beta"}, Attrs: map[string]string{"zone": "a", "tier": "gold"}}

func BenchmarkCodecMarshal(b *testing.B) {
	run := func(b *testing.B, c spi.Codec) {
		buf := make([]byte, 0, 512)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = c.Marshal(buf[:0], benchValue); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("compiled", func(b *testing.B) { run(b, testplugins.JSONCodec{}) })
	b.Run("bridged", func(b *testing.B) {
		v, _ := load(b, spi.KindCodec, `{}`)
		run(b, v.(spi.Codec))
	})
}

func BenchmarkRegistryResolve(b *testing.B) {
	run := func(b *testing.B, r spi.Registry) {
		ctx := context.Background()
		for i := range 10 {
			if err := r.Register(ctx, spi.Instance{Service: "bench", Addr: "10.0.0." + string(rune('0'+i)) + ":80", Weight: 100}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if ins, err := r.Resolve(ctx, "bench"); err != nil || len(ins) != 10 {
				b.Fatal(err, len(ins))
			}
		}
	}
	b.Run("compiled", func(b *testing.B) { run(b, testplugins.NewMemRegistry("bench-compiled", "")) })
	b.Run("bridged", func(b *testing.B) {
		v, _ := load(b, spi.KindRegistry, `{"store":"bench"}`)
		run(b, v.(spi.Registry))
	})
}

func BenchmarkFilterBeforeAfter(b *testing.B) {
	run := func(b *testing.B, f spi.Filter, p *Process) {
		invoke := spi.Chain(func(context.Context, *spi.Call) error { return nil }, f)
		ctx := context.Background()
		meta := &spi.Metadata{}
		meta.Set("authorization", "Bearer abc")
		meta.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		call := &spi.Call{Side: spi.ServerSide, Method: "User.Get", Peer: "127.0.0.1:4000", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
		b.ReportAllocs()
		var m *cpuMeter
		if p != nil {
			m = startCPU(p)
		}
		for b.Loop() {
			call.Meta.CopyFrom(meta)
			call.Trailer.Reset()
			if err := invoke(ctx, call); err != nil {
				b.Fatal(err)
			}
		}
		if m != nil {
			m.report(b)
		}
	}
	const cfg = `{"deny":["Admin.Drop"],"stamp":"kite"}`
	b.Run("compiled", func(b *testing.B) {
		e, _ := testplugins.Lookup(spi.KindFilter)
		v, err := e.New(spi.Config(cfg))
		if err != nil {
			b.Fatal(err)
		}
		run(b, v.(spi.Filter), nil)
	})
	b.Run("bridged", func(b *testing.B) {
		v, p := load(b, spi.KindFilter, cfg)
		run(b, v.(spi.Filter), p)
	})
	b.Run("bridged-grpc", func(b *testing.B) {
		v, p := loadWith(b, spi.KindFilter, cfg, func(d *Decl) { d.NoFilterChannel = true })
		run(b, v.(spi.Filter), p)
	})
	b.Run("bridged-before-only", func(b *testing.B) {
		v, p := load(b, spi.KindFilter, `{"deny":["Admin.Drop"],"stamp":"kite","before_only":true}`)
		run(b, v.(spi.Filter), p)
	})
}

// BenchmarkFilterParallel is BenchmarkFilterBeforeAfter with 16
// goroutines calling (8 per GOMAXPROCS on the 2-core machine).
func BenchmarkFilterParallel(b *testing.B) {
	run := func(b *testing.B, f spi.Filter, p *Process) {
		invoke := spi.Chain(func(context.Context, *spi.Call) error { return nil }, f)
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.ReportAllocs()
		m := startCPU(p)
		defer m.report(b)
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			call := &spi.Call{Side: spi.ServerSide, Method: "User.Get", Peer: "127.0.0.1:4000", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
			for pb.Next() {
				call.Meta.Reset()
				call.Meta.Set("authorization", "Bearer abc")
				call.Trailer.Reset()
				if err := invoke(ctx, call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	const cfg = `{"deny":["Admin.Drop"],"stamp":"kite"}`
	b.Run("bridged", func(b *testing.B) {
		v, p := load(b, spi.KindFilter, cfg)
		run(b, v.(spi.Filter), p)
	})
	b.Run("bridged-grpc", func(b *testing.B) {
		v, p := loadWith(b, spi.KindFilter, cfg, func(d *Decl) { d.NoFilterChannel = true })
		run(b, v.(spi.Filter), p)
	})
	b.Run("bridged-before-only", func(b *testing.B) {
		v, p := load(b, spi.KindFilter, `{"deny":["Admin.Drop"],"stamp":"kite","before_only":true}`)
		run(b, v.(spi.Filter), p)
	})
}

func benchInstances(n int) []spi.Instance {
	ins := make([]spi.Instance, n)
	for i := range ins {
		ins[i] = spi.Instance{Service: "bench", Addr: "10.0.1." + string(rune('a'+i)) + ":80", Weight: 50 + 10*i}
	}
	return ins
}

func BenchmarkBalancerBuild(b *testing.B) {
	ins := benchInstances(10)
	run := func(b *testing.B, bal spi.Balancer) {
		b.ReportAllocs()
		for b.Loop() {
			_ = bal.Build(ins)
		}
	}
	b.Run("compiled", func(b *testing.B) { run(b, testplugins.WRR{}) })
	b.Run("bridged", func(b *testing.B) {
		v, _ := load(b, spi.KindBalancer, `{}`)
		run(b, v.(spi.Balancer))
	})
}

func BenchmarkBalancerPick(b *testing.B) {
	ins := benchInstances(10)
	run := func(b *testing.B, p spi.Picker) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Pick(ctx, spi.PickInfo{Method: "User.Get"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// testplugins.WRR picks under a mutex (nginx's SWRR per pick); a
	// bridged balancer picks from its table without a lock. compiled-table
	// is that same table walk compiled in (what plugins/lb-weighted does),
	// the like-for-like comparison for the bridged figure.
	b.Run("compiled", func(b *testing.B) { run(b, testplugins.WRR{}.Build(ins)) })
	b.Run("compiled-table", func(b *testing.B) {
		p, err := NewTablePicker(ins, spi.PickTable{Schedule: weightedSchedule(ins)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, p)
	})
	b.Run("bridged", func(b *testing.B) {
		v, _ := load(b, spi.KindBalancer, `{}`)
		run(b, v.(spi.Balancer).Build(ins))
	})
}

// cpuMeter reports the CPU time this process and the plugin process p
// spent per benchmark op, as "host-cpu-ns/op" and "plugin-cpu-ns/op": less
// sensitive to other load on the machine than wall time per op.
type cpuMeter struct {
	p          *Process
	host, plug time.Duration
}

func startCPU(p *Process) *cpuMeter {
	return &cpuMeter{p: p, host: selfCPU(), plug: taskCPU(p.Pid())}
}

func (m *cpuMeter) report(b *testing.B) {
	host, plug := selfCPU()-m.host, taskCPU(m.p.Pid())-m.plug
	b.ReportMetric(float64(host.Nanoseconds())/float64(b.N), "host-cpu-ns/op")
	b.ReportMetric(float64(plug.Nanoseconds())/float64(b.N), "plugin-cpu-ns/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// taskCPU sums the CPU time of every thread of pid (nanoseconds, from
// /proc/PID/task/*/schedstat).
func taskCPU(pid int) time.Duration {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			sum += time.Duration(ns)
		}
	}
	return sum
}
