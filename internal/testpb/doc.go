// Package testpb holds protobuf messages for tests of the codecs and of
// calls carrying them end to end: Kinds has a oneof, an enum, 64-bit
// integers, a Timestamp, maps and nested messages (testpb.proto). Tests
// only; regenerate with protoc as testpb.proto says.
package testpb
