package hosts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"

	_ "github.com/kiterpc/kite/plugins/codec-json"
	_ "github.com/kiterpc/kite/plugins/registry-etcd"
)

// Environment of a host process (the test binary run inside a host).
const (
	hostEnv     = "KITE_CLUSTER_HOST"      // address to serve on
	hostNameEnv = "KITE_CLUSTER_HOST_NAME" // name answered with
	hostEtcdEnv = "KITE_CLUSTER_HOST_ETCD" // etcd endpoint to register in; empty: none
)

// service is the name the hosts register under.
const service = "echo"

// registryTTL is the hosts' etcd lease: a partitioned host's instance
// disappears this long (plus etcd's expiry check) after its last
// keepalive.
const registryTTL = 2 * time.Second

func TestMain(m *testing.M) {
	if addr := os.Getenv(hostEnv); addr != "" {
		os.Exit(runHost(addr, os.Getenv(hostNameEnv), os.Getenv(hostEtcdEnv)))
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Req, Resp, Empty and Stats are the messages of the test service.
type Req struct {
	Seq     int `json:"seq"`
	SleepMs int `json:"sleep_ms,omitempty"`
}

type Resp struct {
	Seq    int    `json:"seq"`
	Server string `json:"server"`
}

type Empty struct{}

type Stats struct {
	Served  int64 `json:"served"`   // Echo and Write calls received
	Running int64 `json:"sleeping"` // calls asleep in SleepMs now
}

// echo is the service every host runs. Echo is declared idempotent by
// the tests' clients, Write is not.
type echo struct {
	name             string
	served, sleeping atomic.Int64
}

func (e *echo) answer(ctx context.Context, r *Req) (*Resp, error) {
	e.served.Add(1)
	if r.SleepMs > 0 {
		e.sleeping.Add(1)
		defer e.sleeping.Add(-1)
		t := time.NewTimer(time.Duration(r.SleepMs) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &Resp{Seq: r.Seq, Server: e.name}, nil
}

func (e *echo) Echo(ctx context.Context, r *Req) (*Resp, error)  { return e.answer(ctx, r) }
func (e *echo) Write(ctx context.Context, r *Req) (*Resp, error) { return e.answer(ctx, r) }

func (e *echo) Stats(context.Context, *Empty) (*Stats, error) {
	return &Stats{Served: e.served.Load(), Running: e.sleeping.Load()}, nil
}

// runHost is the main of a host process: serve echo on addr, register
// in etcd when given one, print "ready", run until stdin ends or SIGTERM.
func runHost(addr, name, etcd string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "host %s: %v\n", name, err)
		return 2
	}
	srv, err := core.NewServer(core.ServerOptions{Logger: hclog.NewNullLogger()})
	if err != nil {
		return fail(err)
	}
	if err := srv.Register("Echo", &echo{name: name}); err != nil {
		return fail(err)
	}
	if _, err := srv.Listen(context.Background(), addr, nil); err != nil {
		return fail(err)
	}
	var reg spi.Registry
	if etcd != "" {
		reg, err = etcdRegistry(etcd)
		if err != nil {
			return fail(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = reg.Register(ctx, spi.Instance{Service: service, Addr: addr})
		cancel()
		if err != nil {
			return fail(err)
		}
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-stop:
	case <-sig:
	}
	if reg != nil {
		_ = reg.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

// etcdRegistry builds the etcd registry the hosts and clients use.
func etcdRegistry(endpoint string) (spi.Registry, error) {
	raw, _ := json.Marshal(map[string]any{
		"endpoints":    strings.Split(endpoint, ","),
		"ttl":          registryTTL.String(),
		"dial_timeout": "1s",
	})
	return spi.Default.BuildRegistry("etcd", spi.Config(raw))
}
