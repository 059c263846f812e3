package swapregistry_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/kiterpc/kite/plugins/registry-consul/consultest"
)

// TestSwapRegistryConsul is the fourth step of TestSwapRegistry: the same
// two binaries with kite-consul.hcl. Against the agent at
// KITE_CONSUL_ADDR when set; otherwise against the in-process double of
// the agent's HTTP API (docs/REGISTRIES.md says why CI has no real
// agent), which the two processes reach over loopback like an agent.
func TestSwapRegistryConsul(t *testing.T) {
	addr := os.Getenv("KITE_CONSUL_ADDR")
	if addr == "" {
		agent := consultest.NewServer(consultest.Options{})
		t.Cleanup(agent.Close)
		addr = agent.Addr()
	}
	service := fmt.Sprintf("swap-echo-%d", os.Getpid())
	env := append(os.Environ(), "KITE_SWAP_SERVICE="+service, "KITE_CONSUL_ADDR="+addr)
	runSwap(t, "kite-consul.hcl", env)
}
