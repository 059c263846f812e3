package polyglot

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kiterpc/kite/internal/testkit"
	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/plugin"
	"github.com/kiterpc/kite/spi/spitest"
)

// nodeDir is sdk/node relative to this package's directory.
var nodeDir = filepath.Join("..", "..", "sdk", "node")

var nodeErr = sync.OnceValue(func() error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node is needed for the Node SDK tests: %v", err)
	}
	cmd := exec.Command(node, "-e", "require('@grpc/grpc-js'); require('@grpc/proto-loader')")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sdk/node's dependencies are missing (bash scripts/ensure-node.sh runs npm ci there): %v\n%s", err, out)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		return fmt.Errorf("openssl is needed by the Node SDK's AutoMTLS: %v", err)
	}
	return nil
})

func needNode(t testing.TB) {
	t.Helper()
	if err := nodeErr(); err != nil {
		testkit.Missing(t, "%v", err)
	}
}

// nodeDecl declares the Node script as a plugin: node (resolved on PATH)
// with the script and the SDK module in files.
func nodeDecl(t testing.TB, kind spi.Kind, name, script string) plugin.Decl {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	node, err = filepath.EvalSymlinks(node)
	if err != nil {
		t.Fatal(err)
	}
	d := plugin.Decl{Kind: kind, Name: name, Path: node, SHA256: sha256File(t, node), Args: []string{script}}
	for _, f := range []string{script, abs(t, filepath.Join(nodeDir, "kite-plugin.js")), abs(t, filepath.Join(nodeDir, "kiteplugin.proto"))} {
		d.Files = append(d.Files, plugin.FileSum{Path: f, SHA256: sha256File(t, f)})
	}
	return d
}

// TestNodeFilterConformance runs the filter suite through the bridge
// against the header filter on the Node SDK: the same plugin shape as
// Python, another language and gRPC stack (@grpc/grpc-js).
func TestNodeFilterConformance(t *testing.T) {
	needNode(t)
	e, _ := load(t, nodeDecl(t, spi.KindFilter, "header", abs(t, filepath.Join(nodeDir, "examples", "header-filter.js"))))
	if len(e.Schema) != 4 {
		t.Fatalf("schema = %+v", e.Schema)
	}
	headerSuite(build[spi.Filter](t, e, headerConfig)).Run(t)
}

// TestNodeProtoIsTheProtocol: the Node SDK loads its copy of
// kiteplugin.proto at run time; it must be the host's, byte for byte.
func TestNodeProtoIsTheProtocol(t *testing.T) {
	a, err := os.ReadFile(filepath.Join("..", "..", "spi", "plugin", "proto", "kiteplugin.proto"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(nodeDir, "kiteplugin.proto"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("sdk/node/kiteplugin.proto differs from spi/plugin/proto/kiteplugin.proto: copy it (make generate does)")
	}
}

// TestNodeRegistryConformance runs the registry suite, watch included,
// through the bridge against the memory registry on the Node SDK.
func TestNodeRegistryConformance(t *testing.T) {
	needNode(t)
	e, _ := load(t, nodeDecl(t, spi.KindRegistry, "memory", abs(t, filepath.Join(nodeDir, "examples", "memory-registry.js"))))
	spitest.TestRegistry(t, func(t *testing.T) spi.Registry {
		v, err := e.New(spi.Config(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return v.(spi.Registry) // the suite closes it
	})
}
