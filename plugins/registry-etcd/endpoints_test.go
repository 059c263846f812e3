package etcd

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kiterpc/kite/spi"
)

// TestEndpoints: several endpoints (a cluster) in the forms etcd's
// client takes are accepted; a bad one is refused at startup with its
// index, and as a spi.FieldError on "endpoints", which kite.hcl reports
// at the attribute's file:line:col.
func TestEndpoints(t *testing.T) {
	good := []string{"127.0.0.1:2379", "http://10.0.0.2:2379", "https://etcd-3.example:2379/",
		"[::1]:2379", "unix:///run/etcd.sock", "localhost:22379"}
	_, err := Config{Endpoints: good}.options()
	assert.NoError(t, err)

	for _, tc := range []struct{ ep, want string }{
		{"127.0.0.1", `endpoints[1] "127.0.0.1": want "host:port"`},
		{"127.0.0.1:abc", `port "abc" is not a number from 1 to 65535`},
		{"127.0.0.1:0", `port "0" is not a number`},
		{"127.0.0.1:70000", `port "70000"`},
		{":2379", "no host"},
		{"http://127.0.0.1", `want "host:port"`},
		{"grpc://127.0.0.1:2379", `scheme "grpc" is not http, https, unix or unixs`},
		{"http://127.0.0.1:2379/v3", "without user, path or query"},
		{"unix://", "no socket path"},
	} {
		_, err := Config{Endpoints: []string{"127.0.0.1:2379", tc.ep}}.options()
		if assert.Error(t, err, tc.ep) {
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, "endpoints", spi.FieldOf(err), tc.ep)
		}
	}
	_, err = Config{Endpoints: good, TTL: "1s"}.options()
	assert.Equal(t, "ttl", spi.FieldOf(err))
}
