package zookeeper

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kiterpc/kite/spi"
)

// TestServers: an ensemble's servers are accepted as "host:port" or
// "host" (port 2181); a bad entry is refused at startup with its index,
// as a spi.FieldError on "servers" (kite.hcl reports it at the
// attribute's file:line:col).
func TestServers(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:2181": "127.0.0.1:2181",
		" zk-1:2182 ":    "zk-1:2182",
		"localhost":      "localhost:2181",
		"[::1]:2181":     "[::1]:2181",
	} {
		got, why := checkServer(in)
		assert.Empty(t, why, in)
		assert.Equal(t, want, got, in)
	}
	for _, tc := range []struct{ server, want string }{
		{"127.0.0.1:abc", `servers[1] "127.0.0.1:abc": port "abc" is not a number from 1 to 65535`},
		{"127.0.0.1:0", `port "0"`},
		{":2181", "no host"},
		{"::1", `IPv6 address in brackets`},
		{"zk://127.0.0.1:2181", `want "host:port" or "host"`},
		{"127.0.0.1:2181,127.0.0.1:2182", "one server per list element"},
		{"127.0.0.1:2181/kite", "one server per list element"},
		{"127.0.0.1:2181", "the same server as servers[0]"},
	} {
		_, err := New(Config{Servers: []string{"127.0.0.1:2181", tc.server}})
		if assert.Error(t, err, tc.server) {
			assert.Contains(t, err.Error(), tc.want, tc.server)
			assert.Equal(t, "servers", spi.FieldOf(err), tc.server)
		}
	}
	_, err := New(Config{Servers: []string{"127.0.0.1:2181", "no-such-host.invalid:2181"}})
	if assert.Error(t, err) {
		assert.Equal(t, "servers", spi.FieldOf(err), "%v", err)
	}
}
