package registrykit

import "testing"

func TestParseServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8848":               "http://127.0.0.1:8848/nacos",
		" https://u:p@h:1/ctx/ ":       "https://u:p@h:1/ctx",
		"http://h:2?x=1#f":             "http://h:2/nacos",
		"http://[::1]:8761/eureka/v2/": "http://[::1]:8761/eureka/v2",
	} {
		u, err := ParseServerURL(in, "/nacos")
		if err != nil || u.String() != want {
			t.Errorf("ParseServerURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://h:1", "http://", "http://%zz"} {
		if u, err := ParseServerURL(bad, "/x"); err == nil {
			t.Errorf("ParseServerURL(%q) = %v, want an error", bad, u)
		}
	}
}
