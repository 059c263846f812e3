package quorum

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// EtcdAvailable says why an etcd cluster cannot start here ("" when it can).
func EtcdAvailable() string {
	if _, err := exec.LookPath("etcd"); err != nil {
		return "etcd not found on PATH (apt-get install etcd-server; scripts/services.sh up installs it)"
	}
	return ""
}

// StartEtcd starts a cluster of o.Members etcd processes (3 by default)
// on loopback and waits until every member serves with a leader, at most
// until ctx ends. Members are etcd1..etcdN with a client and a peer port
// each, default raft timing (heartbeat 100 ms, election timeout 1 s) and
// a cluster token of their own, so two test clusters never merge.
func StartEtcd(ctx context.Context, o Options) (*Cluster, error) {
	if why := EtcdAvailable(); why != "" {
		return nil, errors.New("quorum: " + why)
	}
	etcd, _ := exec.LookPath("etcd")
	var env []string
	if runtime.GOARCH == "arm64" {
		env = append(env, "ETCD_UNSUPPORTED_ARCH=arm64") // etcd 3.4 asks for it
	}
	mk := func(c *Cluster, ports []int) error {
		n := len(ports) / 2
		var tok [6]byte
		_, _ = rand.Read(tok[:])
		var initial []string
		for i := range n {
			initial = append(initial, fmt.Sprintf("etcd%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
		}
		for i := range n {
			id := i + 1
			name := fmt.Sprintf("etcd%d", id)
			dir := filepath.Join(c.dir, name)
			client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
			peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
			c.Members = append(c.Members, &Member{
				Name:       name,
				ClientAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
				kind:       KindEtcd,
				id:         id,
				dir:        c.dir,
				logPath:    dir + ".log",
				env:        env,
				// On a restart the data directory exists and the
				// initial-cluster flags are ignored, as for a rebooted host.
				argv: []string{etcd, "--name", name, "--data-dir", dir,
					"--listen-client-urls", client, "--advertise-client-urls", client,
					"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
					"--initial-cluster", strings.Join(initial, ","),
					"--initial-cluster-token", "kite-" + hex.EncodeToString(tok[:]),
					"--initial-cluster-state", "new",
					"--logger", "zap", "--log-outputs", "stderr"},
			})
		}
		return nil
	}
	return start(ctx, KindEtcd, o, 2, mk, etcdRole)
}

// etcdRole asks a member's gRPC gateway for its status.
func etcdRole(ctx context.Context, m *Member) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+m.ClientAddr+"/v3/maintenance/status", strings.NewReader("{}"))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var st struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", fmt.Errorf("status: %w: %s", err, body)
	}
	switch st.Leader {
	case "", "0":
		return "", errors.New("no leader")
	case st.Header.MemberID:
		return "leader", nil
	}
	return "follower", nil
}
