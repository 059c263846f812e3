package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// record is the content of one entry file.
type record struct {
	Instance spi.Instance `json:"instance"`
	// PID is the owner process; PIDNS its pid namespace, so that a reader
	// in another namespace (a container sharing the directory) does not
	// judge liveness by a pid that means nothing to it.
	PID   int    `json:"pid"`
	PIDNS string `json:"pidns,omitempty"`
	// Owner names the registry value that wrote the entry.
	Owner string `json:"owner"`
	// TTLMillis is the owner's promise: its heartbeat (the file's mtime)
	// is never older than this while it lives. Readers use the writer's
	// ttl, not their own, so registries with different settings agree.
	TTLMillis int64 `json:"ttl_ms"`
}

const (
	entrySuffix = ".json"
	lockName    = ".lock"
	// maxName keeps escaped names within the 255-byte limit of common
	// file systems, with room for the suffix and temp-file prefixes.
	maxName = 200
)

// gcAge is how long an entry whose owner cannot be checked (another pid
// namespace) may go without a heartbeat before a reader deletes it. It is
// generous: a live owner that finds its file deleted drops the entry.
func gcAge(ttl time.Duration) time.Duration { return max(10*ttl, time.Minute) }

// escape maps a service name or address to a file name: bytes outside
// [A-Za-z0-9_:@.-] and a leading dot become %XX. It is injective ('%' is
// always escaped), so distinct names never share a file.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == ':' || c == '@' || (c == '.' && i > 0)
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (r *Registry) serviceDir(service string) (string, error) {
	name := escape(service)
	if len(name) > maxName {
		return "", spi.Errorf(spi.InvalidArgument, "local registry: service name %.40q… is too long", service)
	}
	return filepath.Join(r.dir, name), nil
}

func entryName(addr string) (string, error) {
	name := escape(addr) + entrySuffix
	if len(name) > maxName {
		return "", spi.Errorf(spi.InvalidArgument, "local registry: address %.40q… is too long", addr)
	}
	return name, nil
}

// write stores rec atomically: a temp file renamed over the entry, under
// the service directory's lock so it cannot race a garbage collector.
func (r *Registry) write(rec record) error {
	dir, err := r.serviceDir(rec.Instance.Service)
	if err != nil {
		return err
	}
	name, err := entryName(rec.Instance.Addr)
	if err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// The directory may be pruned (its last entry removed by another
	// process) between MkdirAll and CreateTemp: then create it again.
	var tmp *os.File
	for try := 0; ; try++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		tmp, err = os.CreateTemp(dir, ".tmp-*")
		if err == nil {
			break
		}
		// Each retry means another process pruned the directory in
		// between: a few in a row are possible while many leave at once.
		if !errors.Is(err, fs.ErrNotExist) || try == 50 {
			return err
		}
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	defer unlock()
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// remove deletes the entry of (service, addr); with owner set, only if
// the entry still belongs to that owner.
func (r *Registry) remove(service, addr, owner string) error {
	dir, err := r.serviceDir(service)
	if err != nil {
		return nil // cannot exist
	}
	name, err := entryName(addr)
	if err != nil {
		return nil
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // also skips creating a lock file for unknown services
	}
	unlock, err := lockDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if owner != "" {
		rec, err := readRecord(path)
		if err != nil || rec.Owner != owner {
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	pruneDir(dir) // a clean shutdown leaves nothing behind
	return nil
}

// touch refreshes the heartbeat of our entry of (service, addr). It
// reports false when the entry is gone or belongs to another owner.
func (r *Registry) touch(service, addr string, now time.Time) bool {
	dir, err := r.serviceDir(service)
	if err != nil {
		return false
	}
	name, err := entryName(addr)
	if err != nil {
		return false
	}
	path := filepath.Join(dir, name)
	rec, err := readRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true // unreadable for now (e.g. EMFILE): keep trying
	}
	if rec.Owner != r.owner {
		return false
	}
	if err := os.Chtimes(path, now, now); errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return true
}

func readRecord(path string) (record, error) {
	var rec record
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// verdict says what a reader makes of an entry.
type verdict int

const (
	live    verdict = iota
	stale           // heartbeat older than ttl: ignored, kept (the owner may be paused)
	garbage         // owner dead, or silent for gcAge: deleted
)

func (r *Registry) judge(rec record, mtime, now time.Time) verdict {
	ttl := time.Duration(rec.TTLMillis) * time.Millisecond
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	age := now.Sub(mtime)
	if rec.PID > 0 && rec.PIDNS == r.pidns && r.pidns != "" && !pidAlive(rec.PID) {
		return garbage
	}
	if age > gcAge(ttl) {
		return garbage
	}
	if age > ttl {
		return stale
	}
	return live
}

// read returns the live instances of service, sorted by address, and
// deletes the entries of dead owners it comes across.
func (r *Registry) read(service string) ([]spi.Instance, error) {
	dir, err := r.serviceDir(service)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// No service directory: no instances, but only while the registry
		// directory itself is there. A missing registry directory (being
		// restored, unmounted) is an outage: watches keep their last
		// snapshot instead of dropping every instance.
		if st, serr := os.Stat(r.dir); serr != nil || !st.IsDir() {
			return nil, spi.Errorf(spi.Unavailable, "local registry: directory %s is missing", r.dir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []spi.Instance
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, entrySuffix) || strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		rec, err := readRecord(path)
		if err != nil {
			continue // removed meanwhile, or not ours to interpret
		}
		info, err := os.Stat(path)
		if err != nil {
			continue
		}
		if rec.Instance.Service != service {
			continue
		}
		switch r.judge(rec, info.ModTime(), now) {
		case live:
			out = append(out, rec.Instance)
		case garbage:
			r.collect(dir, name, rec.Owner)
		}
	}
	registrykit.SortByAddr(out)
	return out, nil
}

// collect deletes a garbage entry, unless it was re-registered since it
// was read: the check and the removal happen under the directory lock
// that writers hold while renaming an entry into place.
func (r *Registry) collect(dir, name, owner string) {
	unlock, err := lockDir(dir)
	if err != nil {
		return
	}
	defer unlock()
	path := filepath.Join(dir, name)
	rec, err := readRecord(path)
	if err != nil || rec.Owner != owner {
		return
	}
	info, err := os.Stat(path)
	if err != nil || r.judge(rec, info.ModTime(), time.Now()) != garbage {
		return
	}
	os.Remove(path)
	pruneDir(dir)
}
