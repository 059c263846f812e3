package stack

import (
	"errors"
	"net"
	"testing"

	"github.com/kiterpc/kite/core/config"
)

func ipnet(s string) net.Addr {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func TestRoutableAddr(t *testing.T) {
	eth := func() ([]net.Addr, error) {
		return []net.Addr{ipnet("fe80::1/64"), ipnet("fd00::2/64"), ipnet("192.0.2.2/24")}, nil
	}
	v6only := func() ([]net.Addr, error) { return []net.Addr{ipnet("fd00::2/64")}, nil }
	none := func() ([]net.Addr, error) { return nil, nil }
	broken := func() ([]net.Addr, error) { return nil, errors.New("no netlink") }
	cases := []struct {
		addr   string
		ifaddr func() ([]net.Addr, error)
		want   string
	}{
		{"[::]:9000", eth, "192.0.2.2:9000"},
		{"0.0.0.0:9000", eth, "192.0.2.2:9000"},
		{"[::]:9000", v6only, "[fd00::2]:9000"},
		{"0.0.0.0:9000", v6only, "127.0.0.1:9000"}, // an IPv4-only wildcard
		{"[::]:9000", none, "[::1]:9000"},
		{"0.0.0.0:9000", broken, "127.0.0.1:9000"},
		{"10.1.2.3:9000", eth, "10.1.2.3:9000"}, // a bound address is kept
		{"[fd00::9]:9000", eth, "[fd00::9]:9000"},
		{"not-an-addr", eth, "not-an-addr"},
	}
	for _, c := range cases {
		if got := routableAddr(c.addr, c.ifaddr); got != c.want {
			t.Errorf("routableAddr(%q) = %q, want %q", c.addr, got, c.want)
		}
	}
}

// A server listening on every interface registers an address another host
// could dial, and that address reaches its listener.
func TestAdvertisedWildcardIsDialable(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := advertised(&config.ServerConfig{}, ln)
	host, _, err := net.SplitHostPort(got)
	if err != nil {
		t.Fatalf("advertised %q: %v", got, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		t.Fatalf("advertised %q: want a routable IP, not the wildcard", got)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp", got)
	if err != nil {
		t.Fatalf("dialing the advertised %s: %v", got, err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	if a := advertised(&config.ServerConfig{Advertise: "pod:1"}, ln); a != "pod:1" {
		t.Fatalf("advertise set: got %q", a)
	}
}
