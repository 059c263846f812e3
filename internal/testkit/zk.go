package testkit

import (
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// DeleteZKTree removes root and everything below it from the ZooKeeper
// server at addr: the cleanup of a test that registered under a root of
// its own on a shared server. Persistent nodes (a service's parent
// node) outlive the sessions that made them; ephemeral ones would go by
// themselves, but only after the session expires. Failures are reported
// with t.Errorf, so a cleanup that fails marks the test without hiding
// what it found.
func DeleteZKTree(t testing.TB, addr, root string) {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		t.Errorf("cleanup of %s: %v", root, err)
		return
	}
	defer conn.Close()
	var del func(string) error
	del = func(path string) error {
		children, _, err := conn.Children(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := del(path + "/" + c); err != nil {
				return err
			}
		}
		if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	}
	if err := del(root); err != nil {
		t.Errorf("cleanup of %s: %v", root, err)
	}
}

// quietZK drops the zk client's log lines (connects, disconnects).
type quietZK struct{}

func (quietZK) Printf(string, ...any) {}
