package gen

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// runPlugin runs GenerateProto in-process on the descriptor set at path
// (made by protoc --descriptor_set_out --include_imports
// --include_source_info), as protoc would run the plugin binary.
func runPlugin(t *testing.T, path string, generate ...string) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var set descriptorpb.FileDescriptorSet
	require.NoError(t, proto.Unmarshal(raw, &set))
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: generate,
		Parameter:      proto.String("paths=source_relative"),
		ProtoFile:      set.File,
		CompilerVersion: &pluginpb.Version{
			Major: proto.Int32(3), Minor: proto.Int32(21), Patch: proto.Int32(12),
		},
	}
	plugin, err := protogen.Options{}.New(req)
	require.NoError(t, err)
	require.NoError(t, GenerateProto(plugin))
	resp := plugin.Response()
	require.Nil(t, resp.Error, "plugin error: %s", resp.GetError())
	return resp
}

// TestProtoGolden: every call shape, a message from another package,
// nested messages, idempotency and deprecation, two services in a file.
// The rendered stubs compile against protoc-gen-go's messages.
func TestProtoGolden(t *testing.T) {
	t.Parallel()
	resp := runPlugin(t, "testdata/proto/shop.pb", "shop.proto")
	require.Len(t, resp.File, 1)
	f := resp.File[0]
	assert.Equal(t, "shop_kite.pb.go", f.GetName())
	src := []byte(f.GetContent())
	golden(t, "shop.golden", src)
	typeCheck(t, "testdata/proto/shoppb", map[string][]byte{"shop_kite.pb.go": src})

	assert.NotZero(t, resp.GetSupportedFeatures()&uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL))
}

// TestProtoWithoutServices: files without services produce no output.
func TestProtoWithoutServices(t *testing.T) {
	resp := runPlugin(t, "testdata/proto/shop.pb", "google/protobuf/empty.proto")
	assert.Empty(t, resp.File)
}

func TestProtoModel(t *testing.T) {
	raw, err := os.ReadFile("testdata/proto/shop.pb")
	require.NoError(t, err)
	var set descriptorpb.FileDescriptorSet
	require.NoError(t, proto.Unmarshal(raw, &set))
	plugin, err := protogen.Options{}.New(&pluginpb.CodeGeneratorRequest{
		FileToGenerate: []string{"shop.proto"}, ProtoFile: set.File,
	})
	require.NoError(t, err)
	var shop *protogen.File
	for _, f := range plugin.Files {
		if f.Desc.Path() == "shop.proto" {
			shop = f
		}
	}
	require.NotNil(t, shop)
	src, err := ProtoFile(plugin, shop)
	require.NoError(t, err)
	s := string(src)
	// The unknown compiler version is printed as such.
	assert.Contains(t, s, "- protoc          (unknown)")
	// Messages of other packages are imported under protoc-gen-go's name.
	assert.Contains(t, s, `"google.golang.org/protobuf/types/known/emptypb"`)
	assert.Contains(t, s, "Ping(ctx context.Context, req *emptypb.Empty) (*timestamppb.Timestamp, error)")
	// Wire names are the proto full names, as gRPC's paths have them.
	assert.Contains(t, s, `Shop_ServiceName           = "kite.testdata.shop.Shop"`)
	assert.Contains(t, s, `Shop_Get_FullMethodName    = "kite.testdata.shop.Shop.Get"`)
}
