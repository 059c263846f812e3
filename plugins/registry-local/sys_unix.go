//go:build unix

package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// pidAlive reports whether process pid exists. EPERM means it exists but
// belongs to another user. A zombie still counts as alive; its heartbeat
// stops, so it drops out after its ttl.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// pidNamespace identifies this process's pid namespace ("" off Linux:
// then only heartbeats decide liveness).
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// lockDir takes an exclusive flock on dir's lock file. flock locks die
// with their process, so a crash never leaves the directory locked.
//
// The lock file is removed with the service's last entry (pruneDir), so
// the file locked may have been unlinked between open and flock: then
// the lock is on a file nobody else will find, and it is taken again on
// the file (or the directory's absence) that is there now. An absent
// directory gives fs.ErrNotExist.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockName)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		release := func() {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		}
		held, herr := f.Stat()
		now, nerr := os.Stat(path)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return release, nil
		}
		release()
	}
}

// pruneDir removes a service directory whose last entry is gone: its lock
// file, then the directory. The caller holds the directory's lock, so no
// writer is between its rename and its unlock; a writer that created its
// temp file already keeps the directory (it is not empty), and one that
// comes later finds no directory and creates it again.
func pruneDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() != lockName {
			return
		}
	}
	if os.Remove(filepath.Join(dir, lockName)) == nil {
		_ = os.Remove(dir) // fails, harmlessly, if a writer got in meanwhile
	}
}

// checkOwner fails unless dir belongs to the current user and is not
// writable by others.
func checkOwner(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d)", dir, st.Uid, os.Getuid())
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %v)", dir, info.Mode().Perm())
	}
	return nil
}
