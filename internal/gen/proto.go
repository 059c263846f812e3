package gen

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// ProtoVersion is protoc-gen-kite's version, printed in generated headers.
const ProtoVersion = "v1.0.0"

// GenerateProto is protoc-gen-kite's body: for every .proto file asked
// for that declares services it writes <file>_kite.pb.go beside the
// protoc-gen-go output, in the same Go package.
func GenerateProto(plugin *protogen.Plugin) error {
	plugin.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL) |
		uint64(pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	plugin.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
	plugin.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2023
	for _, f := range plugin.Files {
		if !f.Generate || len(f.Services) == 0 {
			continue
		}
		src, err := ProtoFile(plugin, f)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Desc.Path(), err)
		}
		g := plugin.NewGeneratedFile(f.GeneratedFilenamePrefix+"_kite.pb.go", f.GoImportPath)
		if _, err := g.Write(src); err != nil {
			return err
		}
	}
	return nil
}

// ProtoFile renders the stubs for the services of one .proto file.
func ProtoFile(plugin *protogen.Plugin, f *protogen.File) ([]byte, error) {
	im := NewImports(string(f.GoImportPath))
	// Names protoc-gen-go declares in this package must not be taken by
	// an import.
	for _, m := range f.Messages {
		im.Reserve(m.GoIdent.GoName)
	}
	for _, e := range f.Enums {
		im.Reserve(e.GoIdent.GoName)
	}
	protocVersion := "(unknown)"
	if v := plugin.Request.GetCompilerVersion(); v != nil {
		protocVersion = fmt.Sprintf("v%d.%d.%d", v.GetMajor(), v.GetMinor(), v.GetPatch())
		if s := v.GetSuffix(); s != "" {
			protocVersion += "-" + s
		}
	}
	out := &File{
		Style:     StyleProto,
		Generator: "protoc-gen-kite",
		Header: []string{
			"versions:",
			"- protoc-gen-kite " + ProtoVersion,
			"- protoc          " + protocVersion,
			"source: " + f.Desc.Path(),
		},
		Package: string(f.GoPackageName),
		Imports: im,
	}
	msgType := func(m *protogen.Message) Type {
		pkgName := ""
		if mf, ok := plugin.FilesByPath[m.Desc.ParentFile().Path()]; ok {
			pkgName = string(mf.GoPackageName)
		}
		return PointerType(im.Ident(string(m.GoIdent.GoImportPath), pkgName, m.GoIdent.GoName))
	}
	for _, s := range f.Services {
		svc := Service{Name: string(s.Desc.FullName()), GoName: s.GoName, Doc: commentLines(s.Comments.Leading)}
		for _, m := range s.Methods {
			meth := Method{
				Name: m.GoName,
				Wire: string(m.Desc.Name()),
				Doc:  commentLines(m.Comments.Leading),
				Req:  msgType(m.Input),
				Resp: msgType(m.Output),
			}
			switch cs, ss := m.Desc.IsStreamingClient(), m.Desc.IsStreamingServer(); {
			case cs && ss:
				meth.Kind = BidiStream
			case cs:
				meth.Kind = ClientStream
			case ss:
				meth.Kind = ServerStream
			}
			if opts, ok := m.Desc.Options().(*descriptorpb.MethodOptions); ok {
				switch opts.GetIdempotencyLevel() {
				case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
					meth.Idempotent = meth.Kind == Unary
				}
				if opts.GetDeprecated() {
					meth.Doc = append(meth.Doc, "", "Deprecated: do not use.")
				}
			}
			svc.Methods = append(svc.Methods, meth)
		}
		out.Services = append(out.Services, svc)
	}
	return Emit(out)
}

// commentLines splits a protogen comment into lines for Emit.
func commentLines(c protogen.Comments) []string {
	s := strings.TrimRight(string(c), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
