package quorum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ZooKeeperJar is where Debian's zookeeper package puts the server.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// TickTime is the ensemble's tickTime: 500 ms, so sessions as short as
// 1 s are allowed (2 × tickTime) and a follower gives up on a silent
// leader after syncLimit × tickTime = 2.5 s.
const TickTime = 500 * time.Millisecond

// ZooKeeperAvailable says why an ensemble cannot start here ("" when it can).
func ZooKeeperAvailable() string {
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		return ZooKeeperJar + " missing (apt-get install zookeeper; scripts/services.sh up installs it)"
	}
	if _, err := javaBin(); err != nil {
		return err.Error()
	}
	return ""
}

func javaBin() (string, error) {
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/jvm/*/bin/java"); len(m) > 0 {
		return m[0], nil
	}
	return "", errors.New("java not found (the zookeeper package pulls a JRE)")
}

// StartZooKeeper starts an ensemble of o.Members QuorumPeerMain processes
// (3 by default) on loopback and waits until every member serves, at most
// until ctx ends. Each member has a client, a quorum and an election
// port, a dataDir with its myid, and a small JVM (64 MiB heap, serial
// GC, C1 only: the test machines have 2 cores).
func StartZooKeeper(ctx context.Context, o Options) (*Cluster, error) {
	if why := ZooKeeperAvailable(); why != "" {
		return nil, errors.New("quorum: " + why)
	}
	java, _ := javaBin()
	mk := func(c *Cluster, ports []int) error {
		n := len(ports) / 3
		var servers strings.Builder
		for i := range n {
			fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d\n", i+1, ports[3*i+1], ports[3*i+2])
		}
		for i := range n {
			id := i + 1
			dir := filepath.Join(c.dir, fmt.Sprintf("zk%d", id))
			data := filepath.Join(dir, "data")
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(data, "myid"), fmt.Appendf(nil, "%d\n", id), 0o600); err != nil {
				return err
			}
			cfg := fmt.Sprintf(`tickTime=%d
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
maxSessionTimeout=60000
maxClientCnxns=0
%s`, TickTime.Milliseconds(), data, ports[3*i], servers.String())
			cfgPath := filepath.Join(dir, "zoo.cfg")
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				return err
			}
			c.Members = append(c.Members, &Member{
				Name:       fmt.Sprintf("zk%d", id),
				ClientAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
				kind:       KindZooKeeper,
				id:         id,
				dir:        dir,
				logPath:    filepath.Join(dir, "zk.log"),
				argv: []string{java, "-Xmx64m", "-Xms16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
					"-XX:-UsePerfData", "-Xss512k", "-Djava.io.tmpdir=" + dir,
					"-cp", "/etc/zookeeper/conf:" + ZooKeeperJar,
					"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath},
			})
		}
		return nil
	}
	return start(ctx, KindZooKeeper, o, 3, mk, zkRole)
}

// zkRole asks a member with the srvr four-letter word.
func zkRole(ctx context.Context, m *Member) (string, error) {
	out, err := fourLetter(ctx, m.ClientAddr, "srvr")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if mode, ok := strings.CutPrefix(l, "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	return "", fmt.Errorf("not serving: %q", strings.TrimSpace(out))
}

// fourLetter sends a ZooKeeper four-letter word and returns the answer.
func fourLetter(ctx context.Context, addr, word string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, word); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
