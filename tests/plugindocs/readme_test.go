package plugindocs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/kiterpc/kite/core" // the tcp transport
	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-hessian"
	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/filter-auth"
	_ "github.com/kiterpc/kite/plugins/filter-jwt"
	_ "github.com/kiterpc/kite/plugins/filter-log"
	_ "github.com/kiterpc/kite/plugins/filter-recover"
	_ "github.com/kiterpc/kite/plugins/filter-validate"
	_ "github.com/kiterpc/kite/plugins/lb-weighted"
	_ "github.com/kiterpc/kite/plugins/registry-local"
)

// readmes are the plugin READMEs whose examples are checked.
var readmes = []string{
	"codec-hessian",
	"filter-jwt",
	"filter-validate",
}

// hclBlocks returns the ```hcl fenced blocks of a Markdown file.
func hclBlocks(md string) []string {
	var out []string
	for {
		i := strings.Index(md, "```hcl\n")
		if i < 0 {
			return out
		}
		md = md[i+len("```hcl\n"):]
		j := strings.Index(md, "```")
		if j < 0 {
			return out
		}
		out = append(out, md[:j])
		md = md[j:]
	}
}

func TestREADMEExamplesParse(t *testing.T) {
	for _, p := range readmes {
		t.Run(p, func(t *testing.T) {
			path := filepath.Join("..", "..", "plugins", p, "README.md")
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			blocks := hclBlocks(string(src))
			if len(blocks) == 0 {
				t.Fatalf("%s has no kite.hcl example", path)
			}
			for i, b := range blocks {
				name := filepath.Base(path)
				if _, diags := config.Parse([]byte(b), name, spi.Default); diags.HasErrors() {
					t.Errorf("%s, hcl block %d:\n%s\n%v", path, i+1, b, config.DiagnosticsError(diags, config.Sources(name, []byte(b))))
				}
			}
		})
	}
}

// TestParseCatchesTypos is the control: a misspelt attribute in a plugin
// block is an error naming the file position, so the README check can
// fail.
func TestParseCatchesTypos(t *testing.T) {
	for _, src := range []string{
		`filter "jwt" "api" { hmac_keyfile = "/k" }`,
		`filter "validate" "v" { clients = true }`,
		`codec "hessian" "h" { max_depth = "deep" }`,
	} {
		_, diags := config.Parse([]byte(src), "typo.hcl", spi.Default)
		if !diags.HasErrors() {
			t.Errorf("%s: accepted", src)
		} else if err := config.DiagnosticsError(diags, config.Sources("typo.hcl", []byte(src))); !strings.Contains(err.Error(), "typo.hcl:1:") {
			t.Errorf("%s: error does not name file:line:col: %v", src, err)
		}
	}
}
