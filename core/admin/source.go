package admin

import (
	"context"
	"time"

	"github.com/kiterpc/kite/core"
	"github.com/kiterpc/kite/spi"
)

// Source is what the admin listener shows. Implementations must be safe
// for concurrent use; core/stack provides one for a Stack.
type Source interface {
	// Health returns each server's health; it must be cheap (it backs
	// /healthz, which load balancers poll, and the probe listener).
	HealthSource
	// Snapshot returns everything the status page shows. It may ask
	// registries, within ctx.
	Snapshot(ctx context.Context) Snapshot
}

// Server states as reported by a Source.
const (
	StateStarting = "starting"
	StateServing  = "serving"
	StateDraining = "draining"
	StateStopped  = "stopped"
)

// ServerHealth is one server's health.
type ServerHealth struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Status is the server's own status ("SERVING", "NOT_SERVING").
	Status string `json:"status"`
	// Services maps each service to its status.
	Services map[string]string `json:"services"`
}

// Snapshot is the state of a process at one moment.
type Snapshot struct {
	// Config is the kite.hcl the process follows.
	Config     string
	Started    time.Time
	Servers    []ServerInfo
	Clients    []ClientInfo
	Plugins    []PluginInfo
	Registries []RegistryInfo
}

// ServerInfo is one server of the process.
type ServerInfo struct {
	Name string
	// ServiceInfo is the name it registers under.
	Service  string
	Listen   string
	Addr     string // the address announced to clients
	Registry string
	State    string
	Status   string
	// Conns is the number of open connections; -1 when unknown.
	Conns int
	// InFlight is the number of calls in progress; -1 when unknown.
	InFlight int64
	Services []ServiceInfo
}

// ServiceInfo is a service of a server with its methods.
type ServiceInfo struct {
	Name    string
	Status  string
	Methods []string
}

// ClientInfo is one client of the process.
type ClientInfo struct {
	Name     string
	Service  string
	Balancer string
	Registry string
	Targets  []string
	// Instances are the endpoints the client balances over now.
	Instances []spi.Instance
	Stats     core.ClientStats
}

// PluginInfo is one implementation the process can build from.
type PluginInfo struct {
	Kind    string
	Name    string
	Version string
	// Source is "builtin" or the plugin binary's path.
	Source string
	SHA256 string
	Pid    int
}

// RegistryInfo is what one registry holds for the services the process
// names.
type RegistryInfo struct {
	Label    string
	Impl     string
	Services []RegistryService
}

// RegistryService is one service as a registry resolves it.
type RegistryService struct {
	Service   string
	Instances []spi.Instance
	Error     string
}
