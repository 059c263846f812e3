package core

import "testing"

func TestAcceptsEncoding(t *testing.T) {
	for _, c := range []struct {
		list, enc string
		want      bool
	}{
		{"gzip", "gzip", true},
		{"identity,gzip", "gzip", true},
		{"identity, gzip , zstd", "zstd", true},
		{"gzip", "zstd", false},
		{"", "gzip", false},
		{"gzipx,xgzip", "gzip", false},
	} {
		if got := acceptsEncoding(c.list, c.enc); got != c.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v, want %v", c.list, c.enc, got, c.want)
		}
	}
	for id, want := range map[uint8]string{4: "gzip", 2: "zstd"} {
		if name, err := grpcEncoding(id); err != nil || name != want || compressorID(name) != id {
			t.Errorf("compressor %d: grpc-encoding %q %v, want %q and back", id, name, err, want)
		}
	}
	for _, id := range []uint8{1, 3, 99} {
		if _, err := grpcEncoding(id); err == nil {
			t.Errorf("compressor %d: no error, want Unimplemented", id)
		}
	}
	if compressorID("br") != 0 {
		t.Error("an unknown grpc-encoding maps to a compressor")
	}
}
