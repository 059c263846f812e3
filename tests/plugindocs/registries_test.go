package plugindocs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/registry-consul"
	_ "github.com/kiterpc/kite/plugins/registry-eureka"
	_ "github.com/kiterpc/kite/plugins/registry-nacos"
	_ "github.com/kiterpc/kite/plugins/registry-static"
	_ "github.com/kiterpc/kite/plugins/registry-zk"
)

// TestRegistryExamplesParse: the kite.hcl examples of the Consul, Eureka
// and Nacos READMEs, of docs/REGISTRIES.md and docs/CONFIG.md, and the
// swap-registry example's Consul file, parse and pass their plugins'
// schema checks.
func TestRegistryExamplesParse(t *testing.T) {
	files := map[string][]string{}
	for _, p := range []string{"registry-consul", "registry-eureka", "registry-nacos"} {
		path := filepath.Join("..", "..", "plugins", p, "README.md")
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = hclBlocks(string(src))
		if len(files[path]) == 0 {
			t.Fatalf("%s has no kite.hcl example", path)
		}
	}
	for _, doc := range []string{"REGISTRIES.md", "CONFIG.md"} {
		path := filepath.Join("..", "..", "docs", doc)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// CONFIG.md's other blocks are fragments; check those naming these
		// registries.
		for _, b := range hclBlocks(string(src)) {
			if strings.Contains(b, `registry "consul"`) || strings.Contains(b, `registry "eureka"`) || strings.Contains(b, `registry "nacos"`) {
				files[path] = append(files[path], b)
			}
		}
		if len(files[path]) == 0 {
			t.Fatalf("%s has no example of these registries", path)
		}
	}
	swap := filepath.Join("..", "..", "examples", "swap-registry", "kite-consul.hcl")
	src, err := os.ReadFile(swap)
	if err != nil {
		t.Fatal(err)
	}
	files[swap] = []string{string(src)}
	// Secrets a block reads with env("X") without a default: a reader
	// exports them, so the test does too.
	envRef := regexp.MustCompile(`env\("([A-Za-z_][A-Za-z0-9_]*)"\)`)
	for path, blocks := range files {
		for i, b := range blocks {
			for _, e := range envRef.FindAllStringSubmatch(b, -1) {
				if _, set := os.LookupEnv(e[1]); !set {
					t.Setenv(e[1], "set-by-test")
				}
			}
			name := filepath.Base(path)
			if _, diags := config.Parse([]byte(b), name, spi.Default); diags.HasErrors() {
				t.Errorf("%s, hcl block %d:\n%s\n%v", path, i+1, b, config.DiagnosticsError(diags, config.Sources(name, []byte(b))))
			}
		}
	}
	// The control: a misspelt attribute fails.
	if _, diags := config.Parse([]byte(`registry "consul" "c" { check-ttl = "1s" }`), "typo.hcl", spi.Default); !diags.HasErrors() {
		t.Error("a misspelt consul attribute was accepted")
	}
}
