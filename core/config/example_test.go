package config_test

import (
	"fmt"
	"os"

	"github.com/kiterpc/kite/core/config"
	"github.com/kiterpc/kite/spi"
)

// exampleCatalog stands in for spi.Default, which holds whatever plugins
// the program links.
func exampleCatalog() *spi.Catalog {
	cat := &spi.Catalog{}
	nop := func(spi.Config) (any, error) { return nil, nil }
	for _, e := range []spi.Entry{
		{Kind: spi.KindRegistry, Name: "zk", New: nop, Schema: spi.Schema{
			{Name: "servers", Type: spi.TypeStringList, Required: true},
			{Name: "session_timeout", Type: spi.TypeDuration},
		}},
		{Kind: spi.KindRegistry, Name: "local", New: nop},
		{Kind: spi.KindBalancer, Name: "weighted", New: nop},
		{Kind: spi.KindCodec, Name: "auto", New: nop},
		{Kind: spi.KindTransport, Name: "tcp", New: nop},
	} {
		if err := cat.Add(e); err != nil {
			panic(err)
		}
	}
	return cat
}

func ExampleParse() {
	src := []byte(`
registry "zk" "main" {
  servers         = ["127.0.0.1:2181"]
  session_timeout = "10s"
}
client "user" {
  registry = "main"
  timeout  = "250ms"
  retry { max_attempts = 2 }
}
`)
	f, diags := config.Parse(src, "kite.hcl", exampleCatalog())
	if diags.HasErrors() {
		_ = config.FormatDiagnostics(os.Stdout, diags, config.Sources("kite.hcl", src))
		return
	}
	c, _ := f.Client("user")
	reg, _ := f.Component(spi.KindRegistry, c.Registry)
	fmt.Println(c.Service, c.Balancer, c.Timeout, c.Retry.MaxAttempts, c.Retry.BackoffMax)
	fmt.Println(reg.Impl, string(reg.Config))
	// Output:
	// user weighted 250ms 2 1s
	// zk {"servers":["127.0.0.1:2181"],"session_timeout":"10s"}
}

func ExampleFormatDiagnostics() {
	src := []byte(`client "user" {
  timout = "250ms"
}
`)
	_, diags := config.Parse(src, "kite.hcl", exampleCatalog())
	_ = config.FormatDiagnostics(os.Stdout, diags, config.Sources("kite.hcl", src))
	// Output:
	// kite.hcl:2:3: error: Unsupported argument
	//   2 |   timout = "250ms"
	//     |   ^^^^^^
	//   An argument named "timout" is not expected here. Did you mean "timeout"? Valid arguments: "balancer", "codec", "connect_timeout", "filters", "registry", "service", "target", "timeout", "transport".
}

func ExampleParseSize() {
	n, _ := config.ParseSize("4MiB")
	fmt.Println(n, config.FormatSize(64<<10))
	// Output: 4194304 64KiB
}
