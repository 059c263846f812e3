#!/usr/bin/env node
'use strict';
// memory: a Kite registry plugin on the Node SDK, kept in the plugin
// process's memory. Every registry "memory" block served by one process
// shares one store (handles of one process see each other's
// registrations), like the Go `static` registry; a handle withdraws what
// it registered when it is closed, and ends its watches.
const kp = require('../kite-plugin'); // first: it takes stdout over

const store = new Map(); // service -> Map(addr -> instance)
const watchers = new Set(); // {service, notify}

function snapshot(service) {
  const m = store.get(service);
  if (!m) return [];
  return [...m.values()].sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0)).map((i) => JSON.parse(JSON.stringify(i)));
}

function changed(service) {
  for (const w of watchers) if (w.service === service) w.notify();
}

class MemoryRegistry {
  constructor() {
    this.mine = new Set(); // "service\\0addr" registered through this handle
    this.watches = new Set();
    this.closed = false;
  }

  check() { if (this.closed) throw new kp.KiteError(kp.Code.FAILED_PRECONDITION, 'registry is closed'); }

  register(ins) {
    this.check();
    if (!ins.service || !ins.addr) throw new kp.KiteError(kp.Code.INVALID_ARGUMENT, 'instance needs a service and an addr');
    if (!store.has(ins.service)) store.set(ins.service, new Map());
    store.get(ins.service).set(ins.addr, ins);
    this.mine.add(`${ins.service}\0${ins.addr}`);
    changed(ins.service);
  }

  deregister(ins) {
    this.check();
    const m = store.get(ins.service);
    if (m && m.delete(ins.addr)) changed(ins.service);
    this.mine.delete(`${ins.service}\0${ins.addr}`);
  }

  resolve(service) { this.check(); return snapshot(service); }

  watch(service, w) {
    this.check();
    let last = null;
    const entry = {
      service,
      notify: () => {
        const snap = snapshot(service);
        const key = JSON.stringify(snap);
        if (key !== last) { last = key; w.send(snap); }
      },
      end: () => w.fail(new kp.KiteError(kp.Code.CANCELED, `watch of "${service}" ended: the registry was closed`)),
    };
    watchers.add(entry);
    this.watches.add(entry);
    w.onStop(() => { watchers.delete(entry); this.watches.delete(entry); });
    entry.notify(); // the current set first
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const k of this.mine) {
      const [service, addr] = k.split('\0');
      const m = store.get(service);
      if (m && m.delete(addr)) changed(service);
    }
    this.mine.clear();
    for (const e of [...this.watches]) e.end();
  }
}

kp.serve({
  kind: 'registry', name: 'memory', version: '1.0.0',
  doc: 'A registry in the plugin process memory, shared by its handles.',
  schema: [],
  create: () => new MemoryRegistry(),
});
