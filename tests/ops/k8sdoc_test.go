package ops

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kiterpc/kite/core/defaults"
)

// deployment is the part of a Kubernetes Deployment the probes doc uses.
type deployment struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					StartupProbe   *probe `yaml:"startupProbe"`
					ReadinessProbe *probe `yaml:"readinessProbe"`
					LivenessProbe  *probe `yaml:"livenessProbe"`
					Lifecycle      struct {
						PreStop struct {
							Sleep struct {
								Seconds int `yaml:"seconds"`
							} `yaml:"sleep"`
						} `yaml:"preStop"`
					} `yaml:"lifecycle"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestKubernetesDocMatchesTheCode holds docs/KUBERNETES.md's Deployment
// to the code: the probes hit the probe listener's default port by name
// with the paths it serves (liveness /healthz, readiness and startup
// /readyz), the admin port is not exposed, and the grace period covers
// the preStop sleep plus the default shutdown_timeout.
func TestKubernetesDocMatchesTheCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "KUBERNETES.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	require.Len(t, blocks, 1, "one Deployment example")
	var d deployment
	dec := yaml.NewDecoder(bytesReader(blocks[0][1]))
	require.NoError(t, dec.Decode(&d))
	require.Equal(t, "Deployment", d.Kind)
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]

	_, port, err := net.SplitHostPort(defaults.ProbesListen)
	require.NoError(t, err)
	_, adminPort, err := net.SplitHostPort(defaults.AdminListen)
	require.NoError(t, err)
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		assert.NotEqual(t, adminPort, strconv.Itoa(p.ContainerPort), "the admin listener stays unexposed")
	}
	assert.Equal(t, port, strconv.Itoa(ports["probes"]), "the probes port is the probe listener's default")

	for name, want := range map[string]struct {
		p    *probe
		path string
	}{
		"startupProbe": {c.StartupProbe, "/readyz"}, "readinessProbe": {c.ReadinessProbe, "/readyz"}, "livenessProbe": {c.LivenessProbe, "/healthz"},
	} {
		require.NotNil(t, want.p, name)
		assert.Equal(t, want.path, want.p.HTTPGet.Path, name)
		assert.Equal(t, "probes", want.p.HTTPGet.Port, name)
	}
	grace := time.Duration(d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	assert.Greater(t, grace, preStop+defaults.ShutdownTimeout, "SIGKILL must not cut the drain")
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
