package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kiterpc/kite/spi"
	"github.com/kiterpc/kite/spi/registrykit"
)

// Name is the catalog name of this registry.
const Name = "local"

// Defaults.
const (
	DefaultTTL          = 10 * time.Second
	DefaultPollInterval = 200 * time.Millisecond
)

func init() {
	spi.Register(spi.Entry{
		Kind:    spi.KindRegistry,
		Name:    Name,
		Version: "1.0.0",
		Doc:     "file-based registry for one machine (the embedded default); dead processes drop out",
		Schema: spi.Schema{
			{Name: "dir", Type: spi.TypeString, Doc: "registry directory; default $XDG_RUNTIME_DIR/kite, else $TMPDIR/kite-registry-$UID"},
			{Name: "ttl", Type: spi.TypeDuration, Doc: `how long an entry stays valid without a heartbeat (default "10s"); heartbeats run every ttl/3`},
			{Name: "poll_interval", Type: spi.TypeDuration, Doc: `how often watches re-read the directory (default "200ms")`},
		},
		New: spi.FactoryOf(New),
	})
}

// Config is the registry's kite.hcl block. Durations are strings such as
// "500ms".
type Config struct {
	Dir          string `json:"dir,omitempty"`
	TTL          string `json:"ttl,omitempty"`
	PollInterval string `json:"poll_interval,omitempty"`
}

// DefaultDir returns the directory used when Config.Dir is empty:
// $XDG_RUNTIME_DIR/kite (a per-user tmpfs on systemd machines), else
// os.TempDir()/kite-registry-<uid>.
func DefaultDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "kite")
	}
	return filepath.Join(os.TempDir(), "kite-registry-"+strconv.Itoa(os.Getuid()))
}

// Registry is a file-based registry. It is safe for concurrent use.
type Registry struct {
	dir   string
	ttl   time.Duration
	poll  time.Duration
	owner string // random token naming this registry in the files it writes
	pidns string // this process's pid namespace, "" if unknown

	mu     sync.Mutex
	own    map[string]spi.Instance // Key() → instance registered through r
	closed bool
	wake   chan struct{} // closed and replaced when r changes something

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// New opens (creating it if needed) the registry directory of c and
// starts the heartbeat of this registry's entries.
func New(c Config) (*Registry, error) {
	ttl, err := parseDuration("ttl", c.TTL, DefaultTTL, 100*time.Millisecond)
	if err != nil {
		return nil, err
	}
	poll, err := parseDuration("poll_interval", c.PollInterval, DefaultPollInterval, 5*time.Millisecond)
	if err != nil {
		return nil, err
	}
	dir := c.Dir
	if dir == "" {
		dir = DefaultDir()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("local registry: creating %s: %w", dir, err)
		}
		// The default may live in a shared /tmp: refuse a directory that
		// someone else created for us to write into.
		if err := checkOwner(dir); err != nil {
			return nil, fmt.Errorf("local registry: %w; set dir in kite.hcl", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local registry: creating %s: %w", dir, err)
	}
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	r := &Registry{
		dir:   dir,
		ttl:   ttl,
		poll:  poll,
		owner: hex.EncodeToString(tok[:]),
		pidns: pidNamespace(),
		own:   map[string]spi.Instance{},
		wake:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	r.wg.Add(1)
	go r.heartbeat()
	return r, nil
}

func parseDuration(name, s string, def, min time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("local registry: %s: %w", name, err)
	}
	if d < min {
		return 0, fmt.Errorf("local registry: %s %v is below the minimum %v", name, d, min)
	}
	return d, nil
}

// Dir returns the registry directory.
func (r *Registry) Dir() string { return r.dir }

var errClosed = spi.Errorf(spi.FailedPrecondition, "local registry: closed")

// Register implements spi.Registry: it writes the instance's file and
// keeps it alive until Deregister or Close.
func (r *Registry) Register(ctx context.Context, in spi.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.Service == "" || in.Addr == "" {
		return spi.Errorf(spi.InvalidArgument, "local registry: register needs service and addr (got %q, %q)", in.Service, in.Addr)
	}
	in = registrykit.Clone(in)
	rec := record{Instance: in, PID: os.Getpid(), PIDNS: r.pidns, Owner: r.owner, TTLMillis: r.ttl.Milliseconds()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	if err := r.write(rec); err != nil {
		if _, ok := err.(*spi.Error); ok {
			return err
		}
		return spi.WrapError(spi.Unavailable, err, "local registry: registering %s: %v", in.Key(), err)
	}
	r.own[in.Key()] = in
	r.changedLocked()
	return nil
}

// Deregister implements spi.Registry: it removes the instance's file,
// whoever wrote it.
func (r *Registry) Deregister(ctx context.Context, in spi.Instance) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.Service == "" || in.Addr == "" {
		return nil // nothing of that shape can be registered
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.own, in.Key())
	if err := r.remove(in.Service, in.Addr, ""); err != nil {
		return spi.WrapError(spi.Unavailable, err, "local registry: deregistering %s: %v", in.Key(), err)
	}
	r.changedLocked()
	return nil
}

// Resolve implements spi.Registry.
func (r *Registry) Resolve(ctx context.Context, service string) ([]spi.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ins, err := r.read(service)
	if err != nil {
		if _, ok := err.(*spi.Error); ok {
			return nil, err
		}
		return nil, spi.WrapError(spi.Unavailable, err, "local registry: resolving %q: %v", service, err)
	}
	return ins, nil
}

// Close implements spi.Registry: it stops the heartbeat, removes the
// entries this registry wrote and ends its watches.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	r.wg.Wait() // no heartbeat may rewrite a file after we remove it

	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, in := range r.own {
		// Only our own file: another registry may have re-registered the
		// address since.
		if err := r.remove(in.Service, in.Addr, r.owner); err != nil {
			errs = append(errs, err)
		}
	}
	clear(r.own)
	r.changedLocked()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local registry: close: %w", err)
	}
	return nil
}

// changedLocked wakes this registry's watchers; r.mu must be held.
func (r *Registry) changedLocked() {
	close(r.wake)
	r.wake = make(chan struct{})
}

func (r *Registry) wakeChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wake
}

// heartbeat refreshes the mtime of this registry's entries every ttl/3.
// An entry whose file vanished was deregistered (by anyone) and one that
// another registry overwrote now belongs to it: both are dropped, never
// recreated, so a heartbeat cannot undo a Deregister.
func (r *Registry) heartbeat() {
	defer r.wg.Done()
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		r.mu.Lock()
		now := time.Now()
		for key, in := range r.own {
			if !r.touch(in.Service, in.Addr, now) {
				delete(r.own, key)
			}
		}
		r.mu.Unlock()
	}
}

var _ spi.Registry = (*Registry)(nil)
