package polyglot

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/kiterpc/kite/internal/testkit"
	pluginpb "github.com/kiterpc/kite/spi/plugin/proto"
)

// TestPythonStubsMatchProto checks that the Python SDK's generated
// module describes the very protocol the Go host speaks: its embedded
// FileDescriptorProto equals the Go package's, message for message and
// field for field.
func TestPythonStubsMatchProto(t *testing.T) {
	needPython(t)
	cmd := exec.Command(python, "-c", `import base64, sys
sys.path.insert(0, sys.argv[1])
from kite_plugin import kiteplugin_pb2
print(base64.b64encode(kiteplugin_pb2.DESCRIPTOR.serialized_pb).decode())`, abs(t, sdkDir))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	var py descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(raw, &py); err != nil {
		t.Fatal(err)
	}
	goDesc := protodesc.ToFileDescriptorProto(pluginpb.File_kiteplugin_proto)
	// protodesc fills in the JSON names protoc leaves implicit.
	clearJSONNames(goDesc.MessageType)
	clearJSONNames(py.MessageType)
	if len(py.MessageType) < 20 || len(py.Service) != 6 {
		t.Fatalf("python descriptor has %d messages and %d services", len(py.MessageType), len(py.Service))
	}
	if !proto.Equal(&py, goDesc) {
		t.Fatalf("sdk/python/kite_plugin/kiteplugin_pb2.py describes another protocol than spi/plugin/proto; regenerate it with `make generate`\npython: %v",
			&py)
	}
}

func clearJSONNames(ms []*descriptorpb.DescriptorProto) {
	for _, m := range ms {
		for _, f := range m.Field {
			f.JsonName = nil
		}
		clearJSONNames(m.NestedType)
	}
}

// TestPythonStubsRegenerate regenerates the Python module with protoc
// and compares it with the committed one, so an edit of kiteplugin.proto
// without `make generate` fails here. The committed file comes from
// Debian bookworm's protoc (libprotoc 3.21.12), the version matching
// Debian's python3-protobuf runtime.
func TestPythonStubsRegenerate(t *testing.T) {
	protoc := testkit.Tool(t, "protoc", "Debian protobuf-compiler; bash scripts/ensure-python.sh installs it (make test does)")
	dir := t.TempDir()
	cmd := exec.Command(protoc, "-I", filepath.Join("..", "..", "spi", "plugin", "proto"), "--python_out="+dir, "kiteplugin.proto")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	fresh, err := os.ReadFile(filepath.Join(dir, "kiteplugin_pb2.py"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(sdkDir, "kite_plugin", "kiteplugin_pb2.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		version, _ := exec.Command(protoc, "--version").Output()
		t.Fatalf("sdk/python/kite_plugin/kiteplugin_pb2.py differs from what %s generates from spi/plugin/proto/kiteplugin.proto; run `make generate` (committed with libprotoc 3.21.12)",
			strings.TrimSpace(string(version)))
	}
}
