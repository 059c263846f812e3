#!/usr/bin/env python3
"""jsonfile: a Kite registry plugin in Python, backed by a JSON file.

The file maps service names to their instances:

    {"services": {"greeter": [{"addr": "127.0.0.1:7001", "weight": 10,
                               "version": "v1", "zone": "", "tags": [],
                               "metadata": {}}]}}

Registrations through Kite are written to it (read-modify-write under an
flock on "<file>.lock", replaced atomically by rename), so several
processes — this plugin serving a server's stack and a client's — share
one registry. The plugin also watches the file (polling its inode, size
and mtime every poll_interval): an operator may edit it by hand and
watchers see the change. A handle withdraws the instances it registered
when it is closed.

    plugin "registry" "jsonfile" {
      command = ["/usr/bin/python3", "json_registry.py"]
      sha256  = "<sha256sum /usr/bin/python3>"
      files   = { "json_registry.py" = "<sha256sum json_registry.py>" }
    }
    registry "jsonfile" "main" {
      file          = "/srv/kite/registry.json"
      poll_interval = "100ms"
    }
"""
import fcntl
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kite_plugin as kp  # noqa: E402


class Store:
    """One registry file, shared by every handle of this process that
    names it. cond is notified on every change, local or seen on disk."""

    _stores = {}
    _stores_lock = threading.Lock()

    @classmethod
    def open(cls, path, poll):
        with cls._stores_lock:
            s = cls._stores.get(path)
            if s is None:
                s = cls._stores[path] = Store(path, poll)
            else:
                s.poll = min(s.poll, poll)
            return s

    def __init__(self, path, poll):
        self.path, self.poll = path, poll
        self.cond = threading.Condition()
        self.services = {}  # service -> {addr: instance dict}
        self.sig = None
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with self.cond:
            self._reload_locked()
        t = threading.Thread(target=self._poll_loop, name="jsonfile-poll", daemon=True)
        t.start()

    def _stat(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        if not raw.strip():
            return {}
        doc = json.loads(raw)
        out = {}
        for svc, ins in (doc.get("services") or {}).items():
            m = {}
            for i in ins:
                d = kp.Instance.from_dict(dict(i, service=svc)).to_dict()
                m[d["addr"]] = d
            if m:
                out[svc] = m
        return out

    def _reload_locked(self):
        sig = self._stat()
        if sig == self.sig:
            return
        try:
            data = self._read()
        except ValueError as e:
            # A half-edited file: keep the last good state.
            kp.log.warning("registry file is not valid JSON; keeping the last good state",
                           extra={"kv": {"file": self.path, "error": str(e)}})
            self.sig = sig
            return
        self.sig = sig
        if data != self.services:
            self.services = data
            self.cond.notify_all()

    def _poll_loop(self):
        while True:
            with self.cond:
                poll = self.poll
            threading.Event().wait(poll)
            with self.cond:
                self._reload_locked()

    def mutate(self, fn):
        """Apply fn to the file's current content under the file lock."""
        with open(self.path + ".lock", "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            try:
                with self.cond:
                    try:
                        data = self._read()
                    except ValueError as e:
                        raise kp.Error(kp.Code.FAILED_PRECONDITION, "%s is not valid JSON: %s" % (self.path, e))
                    fn(data)
                    # On disk an instance is listed under its service and
                    # does not repeat it.
                    doc = {"services": {svc: [{k: v for k, v in d.items() if k != "service"}
                                              for _, d in sorted(m.items())]
                                        for svc, m in sorted(data.items()) if m}}
                    tmp = "%s.%d.tmp" % (self.path, os.getpid())
                    with open(tmp, "w") as f:
                        json.dump(doc, f, indent=2, sort_keys=True)
                        f.write("\n")
                    os.replace(tmp, self.path)
                    self.sig = self._stat()
                    data = {svc: m for svc, m in data.items() if m}
                    if data != self.services:
                        self.services = data
                        self.cond.notify_all()
            finally:
                fcntl.flock(lk, fcntl.LOCK_UN)

    def snapshot_locked(self, service):
        return [kp.Instance.from_dict(d) for _, d in sorted(self.services.get(service, {}).items())]


class JsonFileRegistry(kp.Registry):
    def __init__(self, config):
        path = config.get("file") or ""
        if not path:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "file is required")
        poll = kp.parse_duration(config.get("poll_interval") or "200ms")
        if poll <= 0:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "poll_interval must be positive")
        self.store = Store.open(os.path.abspath(path), poll)
        self.mine = set()  # (service, addr) registered through this handle
        self.closed = False

    def _check(self):
        if self.closed:
            raise kp.Error(kp.Code.FAILED_PRECONDITION, "registry is closed")

    def register(self, ins):
        self._check()
        if not ins.service or not ins.addr:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "instance needs a service and an addr")
        d = ins.to_dict()
        self.store.mutate(lambda data: data.setdefault(ins.service, {}).__setitem__(ins.addr, d))
        self.mine.add(ins.key())

    def deregister(self, ins):
        self._check()
        self.store.mutate(lambda data: data.get(ins.service, {}).pop(ins.addr, None))
        self.mine.discard(ins.key())

    def resolve(self, service):
        self._check()
        with self.store.cond:
            self.store._reload_locked()
            return self.store.snapshot_locked(service)

    def watch(self, service, stop):
        self._check()
        cond = self.store.cond

        def wake():
            with cond:
                cond.notify_all()
        stop.on_set(wake)
        last = None
        while True:
            with cond:
                while True:
                    if stop.is_set() or self.closed:
                        return
                    snap = self.store.snapshot_locked(service)
                    if snap != last:
                        break
                    cond.wait()
            last = snap
            yield snap

    def close(self):
        if self.closed:
            return
        mine, self.mine = self.mine, set()

        def withdraw(data):
            for svc, addr in mine:
                data.get(svc, {}).pop(addr, None)
        try:
            if mine:
                self.store.mutate(withdraw)
        finally:
            with self.store.cond:
                self.closed = True
                self.store.cond.notify_all()


ENTRY = kp.Entry(
    kind="registry", name="jsonfile", version="1.0.0", new=JsonFileRegistry,
    doc="A registry kept in a JSON file, shared by every process that names it, edited by hand if need be.",
    schema=[
        kp.Field("file", "string", required=True, doc="the registry file (created when missing)"),
        kp.Field("poll_interval", "duration", doc="how often the file is checked for outside edits (default 200ms)"),
    ])

if __name__ == "__main__":
    kp.serve(ENTRY)
