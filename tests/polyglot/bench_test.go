package polyglot

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/tests/polyglot/internal/goheader"
)

// TestGoHeaderConformance: the Go port the benchmarks compare with is
// the same filter (same suite, same configuration).
func TestGoHeaderConformance(t *testing.T) {
	v, err := goheader.Entry.New(spi.Config(headerConfig))
	if err != nil {
		t.Fatal(err)
	}
	headerSuite(v.(spi.Filter)).Run(t)
}

var goHeaderBin = sync.OnceValues(func() (string, error) {
	dir, err := filepath.Abs(filepath.Join("testdata", "goheader"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "..", "..", "..", "..", "bin", "polyglot-goheader")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{err, string(b)}
	}
	return filepath.Abs(out)
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build goheader: " + e.err.Error() + "\n" + e.out }

// BenchmarkHeaderFilter is the cost of one server-side call through the
// header filter (Before and After, two metadata pairs, a count in the
// trailer), compiled in, served by a Go plugin (on its filter channel,
// and on gRPC) and served by the Python and Node plugins, with 1 and 16
// concurrent callers.
func BenchmarkHeaderFilter(b *testing.B) {
	modes := []struct {
		name   string
		filter func(b *testing.B) spi.Filter
	}{
		{"compiled-in", func(b *testing.B) spi.Filter {
			v, err := goheader.Entry.New(spi.Config(headerConfig))
			if err != nil {
				b.Fatal(err)
			}
			return v.(spi.Filter)
		}},
		{"go-plugin", func(b *testing.B) spi.Filter {
			bin, err := goHeaderBin()
			if err != nil {
				b.Fatal(err)
			}
			e, _ := load(b, plugin.Decl{Kind: spi.KindFilter, Name: "header", Path: bin, SHA256: sha256File(b, bin)})
			return build[spi.Filter](b, e, headerConfig)
		}},
		{"go-plugin-grpc", func(b *testing.B) spi.Filter {
			// The Go plugin on the gRPC Filter service, as before the
			// filter channel (and as Python and Node plugins are called).
			bin, err := goHeaderBin()
			if err != nil {
				b.Fatal(err)
			}
			e, _ := load(b, plugin.Decl{Kind: spi.KindFilter, Name: "header", Path: bin, SHA256: sha256File(b, bin), NoFilterChannel: true})
			return build[spi.Filter](b, e, headerConfig)
		}},
		{"python-plugin", func(b *testing.B) spi.Filter {
			e, _ := load(b, pyDecl(b, spi.KindFilter, "header", example(b, "header_filter.py")))
			return build[spi.Filter](b, e, headerConfig)
		}},
		{"node-plugin", func(b *testing.B) spi.Filter {
			needNode(b)
			e, _ := load(b, nodeDecl(b, spi.KindFilter, "header", abs(b, filepath.Join(nodeDir, "examples", "header-filter.js"))))
			return build[spi.Filter](b, e, headerConfig)
		}},
	}
	newCall := func() *spi.Call {
		call := &spi.Call{Side: spi.ServerSide, Method: "User.Get", Peer: "127.0.0.1:4000", Meta: &spi.Metadata{}, Trailer: &spi.Metadata{}}
		call.Meta.Set("x-tenant", "blue")
		call.Meta.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		return call
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			invoke := m.filter(b).Wrap(func(context.Context, *spi.Call) error { return nil })
			// one runs a call; RunParallel's goroutines may not FailNow.
			one := func(b *testing.B, call *spi.Call) bool {
				call.Trailer.Reset()
				if err := invoke(context.Background(), call); err != nil {
					b.Error(err)
					return false
				}
				if call.Trailer.Get("x-header-calls") == "" {
					b.Error("no count in the trailer")
					return false
				}
				return true
			}
			b.Run("sequential", func(b *testing.B) {
				call := newCall()
				b.ReportAllocs()
				for b.Loop() {
					if !one(b, call) {
						return
					}
				}
			})
			b.Run("16-callers", func(b *testing.B) {
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					call := newCall()
					for pb.Next() && one(b, call) {
					}
				})
			})
		})
	}
}
