// Package pluginpb holds the generated Go code of the Kite plugin protocol
// (kiteplugin.proto). Regenerate with `make generate` (needs protoc,
// protoc-gen-go and protoc-gen-go-grpc on PATH).
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative kiteplugin.proto
//go:generate protoc --python_out=../../../sdk/python/kite_plugin kiteplugin.proto
//go:generate cp kiteplugin.proto ../../../sdk/node/kiteplugin.proto
