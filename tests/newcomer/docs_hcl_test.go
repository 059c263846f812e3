package newcomer

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/stretchr/testify/require"

	_ "github.com/kiterpc/kite/core" // the tcp, unix, tls and grpc transports
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"

	// What the kite CLI links: the names the docs use.
	_ "github.com/kiterpc/kite/plugins/codec-hessian"
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/codec-proto"
	_ "github.com/kiterpc/kite/plugins/compress-gzip"
	_ "github.com/kiterpc/kite/plugins/compress-s2"
	_ "github.com/kiterpc/kite/plugins/compress-snappy"
	_ "github.com/kiterpc/kite/plugins/compress-zstd"
	_ "github.com/kiterpc/kite/plugins/filter-auth"
	_ "github.com/kiterpc/kite/plugins/filter-jwt"
	_ "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-metrics"
	_ "github.com/kiterpc/kite/plugins/filter-ratelimit"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/filter-tracing"
	_ "github.com/kiterpc/kite/plugins/filter-validate"
	_ "github.com/kiterpc/kite/plugins/lb-hash"
	_ "github.com/kiterpc/kite/plugins/lb-p2c"
	_ "github.com/kiterpc/kite/plugins/lb-random"
	_ "github.com/kiterpc/kite/plugins/lb-roundrobin"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-consul"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
	_ "github.com/kiterpc/kite/plugins/registry-eureka"
	_ "github.com/kiterpc/kite/plugins/registry-local"
	_ "github.com/kiterpc/kite/plugins/registry-nacos"
	_ "github.com/kiterpc/kite/plugins/registry-static"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

// TestDocsHCLSnippetsParse parses every ```hcl block of the README, docs/
// and the plugin and example READMEs with the kite.hcl parser, so a
// snippet a reader copies parses (single-line blocks with several
// attributes, for one, do not in HCL). A snippet that is deliberately a
// fragment — it refers to blocks it does not show — may only fail on
// those references.
func TestDocsHCLSnippetsParse(t *testing.T) {
	var files []string
	for _, g := range []string{"README.md", "docs/*.md", "plugins/*/README.md", "examples/*/README.md", "sdk/*/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, g))
		require.NoError(t, err)
		files = append(files, m...)
	}
	fence := regexp.MustCompile("(?s)```hcl\n(.*?)```")
	envRef := regexp.MustCompile(`env\("([A-Za-z_][A-Za-z0-9_]*)"\)`)
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range fence.FindAllSubmatchIndex(src, -1) {
			line := 1 + strings.Count(string(src[:m[2]]), "\n")
			name := fmt.Sprintf("%s:%d", strings.TrimPrefix(f, root+"/"), line)
			snippet := src[m[2]:m[3]]
			n++
			// Secrets the snippet reads with env("X"): a reader exports them.
			for _, e := range envRef.FindAllSubmatch(snippet, -1) {
				if _, set := os.LookupEnv(string(e[1])); !set {
					t.Setenv(string(e[1]), "set-by-test")
				}
			}
			_, diags := config.Parse(snippet, name, spi.Default)
			for _, d := range diags {
				if d.Severity != hcl.DiagError || fragmentOnly(d) {
					continue
				}
				pos := ""
				if d.Subject != nil {
					pos = fmt.Sprintf(" (snippet line %d)", d.Subject.Start.Line)
				}
				t.Errorf("%s: the hcl snippet does not parse%s: %s: %s", name, pos, d.Summary, d.Detail)
			}
		}
	}
	require.Greater(t, n, 20, "found too few hcl snippets: did the docs move?")
}

// fragmentOnly tells errors a snippet may have for being a fragment: a
// reference to a block (registry, filter, …) it does not show, a server
// block shown for one attribute (no listen), or a placeholder checksum
// ("3f1c…e9") for a binary the reader builds.
func fragmentOnly(d *hcl.Diagnostic) bool {
	switch d.Summary {
	case "Unknown registry", "Unknown balancer", "Unknown filter", "Unknown codec", "Unknown compressor",
		"Unknown reference", "Unknown implementation", "Invalid sha256":
		return true
	case "Missing required argument":
		return strings.Contains(d.Detail, `"listen"`)
	}
	return false
}
