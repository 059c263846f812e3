'use strict';
// Kite plugin SDK for Node.js: the same shape as the Python SDK
// (sdk/python), over @grpc/grpc-js with the protocol loaded at run time
// from kiteplugin.proto by @grpc/proto-loader (no generated code). See
// docs/PLUGIN-PROTOCOL.md for the contract and README.md for the API.

const MAGIC_COOKIE_KEY = 'KITE_PLUGIN_MAGIC_COOKIE';
const MAGIC_COOKIE_VALUE = '8c7a0f3e-kite-plugin-bridge-1c5d92e4b6';
const CORE_PROTOCOL_VERSION = 1;
const PROTOCOL_VERSION = 1;
const MAX_MESSAGE_SIZE = 128 << 20;

// stdout carries the handshake line and nothing else: keep the real
// write for it, send everything else written to process.stdout (and so
// console.log) to stderr.
const fromKite = process.env[MAGIC_COOKIE_KEY] === MAGIC_COOKIE_VALUE;
const handshakeWrite = process.stdout.write.bind(process.stdout);
if (fromKite) {
  process.stdout.write = process.stderr.write.bind(process.stderr);
}

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const pkgDef = protoLoader.loadSync(path.join(__dirname, 'kiteplugin.proto'), {
  keepCase: true, longs: String, enums: Number, defaults: true,
});
const pb = grpc.loadPackageDefinition(pkgDef).kite.plugin.v1;

const Code = Object.freeze({
  OK: 0, CANCELED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9,
  ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
});

// KiteError is an error of the implementation: it reaches the host as an
// *spi.Error with this code, message and details.
class KiteError extends Error {
  constructor(code, message, details = Buffer.alloc(0)) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

// ---------------------------------------------------------------- logging

function log(level, message, kv = {}) {
  const entry = Object.assign({ '@level': level, '@message': message, '@timestamp': new Date().toISOString().replace(/Z$/, '000Z') }, kv);
  process.stderr.write(JSON.stringify(entry) + '\n');
}
const logger = {
  debug: (m, kv) => log('debug', m, kv),
  info: (m, kv) => log('info', m, kv),
  warn: (m, kv) => log('warn', m, kv),
  error: (m, kv) => log('error', m, kv),
};

// ---------------------------------------------------------------- errors on the wire

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function lenField(num, data) {
  return Buffer.concat([varint((num << 3) | 2), varint(data.length), data]);
}

// statusDetails is a google.rpc.Status holding one Any with a
// kite.plugin.v1.ErrorDetail: the marker of the plugin's own errors.
function statusDetails(code, message, details) {
  const errorDetail = details.length ? lenField(1, details) : Buffer.alloc(0);
  const any = Buffer.concat([
    lenField(1, Buffer.from('type.googleapis.com/kite.plugin.v1.ErrorDetail')),
    lenField(2, errorDetail),
  ]);
  const parts = [varint(1 << 3), varint(code)];
  if (message) parts.push(lenField(2, Buffer.from(message)));
  parts.push(lenField(3, any));
  return Buffer.concat(parts);
}

function toKiteError(e) {
  if (e instanceof KiteError) return e;
  return new KiteError(Code.UNKNOWN, `${e && e.name}: ${e && e.message}`);
}

function grpcError(e) {
  const ke = toKiteError(e);
  const code = ke.code || Code.UNKNOWN;
  const md = new grpc.Metadata();
  md.set('grpc-status-details-bin', statusDetails(code, ke.message, ke.details));
  return { code, details: ke.message, metadata: md };
}

// ---------------------------------------------------------------- filter calls

class Metadata {
  constructor(pairs = []) { this.pairs = pairs.map(([k, v]) => [k, v]); }
  get(key, dflt = undefined) { const p = this.pairs.find(([k]) => k === key); return p ? p[1] : dflt; }
  has(key) { return this.pairs.some(([k]) => k === key); }
  set(key, value) { this.pairs = this.pairs.filter(([k]) => k !== key); this.pairs.push([key, value]); }
  add(key, value) { this.pairs.push([key, value]); }
  delete(key) { this.pairs = this.pairs.filter(([k]) => k !== key); }
  toPB() { return this.pairs.map(([key, value]) => ({ key, value })); }
  static fromPB(ps) { return new Metadata((ps || []).map((p) => [p.key, p.value])); }
  same(other) { return JSON.stringify(this.pairs) === JSON.stringify(other.pairs); }
}

function callFromPB(ci) {
  ci = ci || {};
  const dl = Number(ci.deadline_unix_nano || 0);
  return {
    method: ci.method || '', side: ci.side === 2 ? 'server' : 'client', peer: ci.peer || '',
    meta: Metadata.fromPB(ci.meta), trailer: new Metadata(), oneWay: !!ci.one_way, stream: !!ci.stream,
    deadline: dl ? dl / 1e9 : null, state: {},
  };
}

// ---------------------------------------------------------------- registry

function instanceFromPB(p) {
  p = p || {};
  return {
    service: p.service || '', addr: p.addr || '', weight: Number(p.weight || 0), version: p.version || '',
    zone: p.zone || '', tags: [...(p.tags || [])], metadata: Object.assign({}, p.metadata || {}),
  };
}

function instanceToPB(i) {
  return {
    service: i.service, addr: i.addr, weight: String(i.weight || 0), version: i.version || '', zone: i.zone || '',
    tags: i.tags || [], metadata: i.metadata || {},
  };
}

// ---------------------------------------------------------------- server

const ABANDON_AFTER = 600; // seconds a call waits for an After that never comes

class Server {
  constructor(entry) {
    this.entry = entry;
    this.handles = new Map();
    this.calls = new Map();
    this.nextCall = 0;
  }

  impl(h) {
    const v = this.handles.get(String(h));
    if (!v) throw new KiteError(Code.FAILED_PRECONDITION, `${this.entry.kind} plugin "${this.entry.name}": handle ${h} is not configured (plugin restarted?)`);
    return v;
  }

  release(h) {
    const v = this.handles.get(String(h));
    this.handles.delete(String(h));
    if (v && v.close) v.close();
  }

  releaseAll() {
    for (const [h, v] of this.handles) {
      try { if (v.close) v.close(); } catch (e) { logger.warn('closing handle', { handle: h, error: String(e) }); }
    }
    this.handles.clear();
  }

  Info() {
    const e = this.entry;
    return {
      protocol_version: PROTOCOL_VERSION, kind: e.kind, name: e.name, version: e.version || '0.0.0', doc: e.doc || '',
      sdk: `node${process.versions.node} kite-sdk-node grpc-js`,
      schema: (e.schema || []).map((f) => ({ name: f.name, type: f.type || 'string', required: !!f.required, doc: f.doc || '' })),
    };
  }

  Configure(req) {
    let cfg;
    try { cfg = JSON.parse(req.config_json && req.config_json.length ? req.config_json.toString() : '{}'); } catch (e) {
      throw new KiteError(Code.INVALID_ARGUMENT, `configuration is not JSON: ${e.message}`);
    }
    let v;
    try { v = this.entry.create(cfg); } catch (e) {
      if (e instanceof KiteError) throw e;
      throw new KiteError(Code.INVALID_ARGUMENT, `${this.entry.kind} "${this.entry.name}": ${e.message}`);
    }
    const old = this.handles.get(String(req.handle));
    this.handles.set(String(req.handle), v);
    if (old && old.close) old.close();
    return { name: v.name || '', id: v.id || 0 };
  }

  Release(req) { this.release(req.handle); return {}; }

  Before(req) {
    const f = this.impl(req.handle);
    const call = callFromPB(req.call);
    const before = new Metadata(call.meta.pairs);
    let verdict;
    try {
      verdict = f.before ? f.before(call) : undefined;
    } catch (e) {
      if (!(e instanceof KiteError)) logger.error('filter before failed', { error: String(e && e.stack) });
      const ke = toKiteError(e);
      return { proceed: false, status: { code: ke.code || Code.UNKNOWN, message: ke.message, details: ke.details } };
    }
    const changed = !call.meta.same(before);
    if (verdict) {
      return { proceed: false, status: { code: verdict.code || 0, message: verdict.message || '', details: verdict.details || Buffer.alloc(0) },
        meta_changed: changed, meta: call.meta.toPB() };
    }
    let callId = 0;
    if (typeof f.after === 'function') {
      callId = ++this.nextCall;
      const now = Date.now() / 1000;
      this.calls.set(String(callId), { f, call, expires: call.deadline || now + ABANDON_AFTER });
      if (callId % 1024 === 0) {
        for (const [id, c] of this.calls) if (c.expires < now) this.calls.delete(id);
      }
    }
    return { proceed: true, meta_changed: changed, meta: changed ? call.meta.toPB() : [], call_id: String(callId) };
  }

  After(req) {
    const entry = this.calls.get(String(req.call_id));
    if (!entry) throw new KiteError(Code.NOT_FOUND, `filter plugin: call ${req.call_id} is unknown or expired`);
    this.calls.delete(String(req.call_id));
    const { f, call } = entry;
    call.trailer = Metadata.fromPB(req.trailer);
    const before = new Metadata(call.trailer.pairs);
    const result = { code: (req.result && req.result.code) || 0, message: (req.result && req.result.message) || '',
      details: (req.result && req.result.details) || Buffer.alloc(0) };
    let out;
    try {
      out = f.after(call, result);
    } catch (e) {
      const ke = toKiteError(e);
      out = { code: ke.code || Code.UNKNOWN, message: ke.message, details: ke.details };
    }
    out = out || result;
    const changed = !call.trailer.same(before);
    return { result: { code: out.code || 0, message: out.message || '', details: out.details || Buffer.alloc(0) },
      trailer_changed: changed, trailer: changed ? call.trailer.toPB() : [] };
  }

  // -- Registry
  Register(req) { this.impl(req.handle).register(instanceFromPB(req.instance)); return {}; }
  Deregister(req) { this.impl(req.handle).deregister(instanceFromPB(req.instance)); return {}; }
  Resolve(req) { return { instances: this.impl(req.handle).resolve(req.service).map(instanceToPB) }; }
  Close(req) { this.release(req.handle); return {}; }

  // Watch is a server stream: the implementation's watch(service, w)
  // calls w.send(instances) for each snapshot (the current set first,
  // never the same set twice in a row) and w.fail(err) when it ends on
  // its own (the registry was closed); w.onStop(cb) runs cb when the host
  // stops watching.
  watchHandler() {
    return (call) => {
      const stops = [];
      let done = false;
      const finish = () => {
        if (done) return false;
        done = true;
        for (const cb of stops) { try { cb(); } catch (e) { logger.warn('watch stop', { error: String(e) }); } }
        return true;
      };
      call.on('cancelled', finish);
      call.on('error', finish);
      const w = {
        send: (instances) => { if (!done) call.write({ instances: instances.map(instanceToPB) }); },
        // grpc-js ends a server stream with the status of an 'error' event.
        fail: (err) => { if (finish()) call.emit('error', grpcError(err)); },
        onStop: (cb) => { if (done) cb(); else stops.push(cb); },
      };
      try {
        this.impl(call.request.handle).watch(call.request.service, w);
      } catch (e) {
        w.fail(e);
      }
    };
  }

  // Unary handlers: implementation errors become application errors.
  unary(name) {
    return (call, callback) => {
      try {
        callback(null, this[name](call.request));
      } catch (e) {
        if (!(e instanceof KiteError)) logger.error(`${name} failed`, { error: String(e && e.stack) });
        callback(grpcError(e));
      }
    };
  }

  handlersOf(service) {
    const out = {};
    for (const name of Object.keys(service)) out[name] = service[name].responseStream ? this.watchHandler() : this.unary(name);
    return out;
  }
}

const raw = (p) => ({
  path: p, requestStream: false, responseStream: false,
  requestSerialize: (x) => x, requestDeserialize: (b) => b,
  responseSerialize: (x) => x, responseDeserialize: (b) => b,
});

// serverCredentials is go-plugin's AutoMTLS, plugin side: a fresh
// self-signed certificate for "localhost" (made with the openssl tool:
// Node has no X.509 builder), trusting only the host's certificate.
function serverCredentials(clientCertPEM) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kite-plugin-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    childProcess.execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
      '-subj', '/CN=localhost/O=Kite plugin', '-keyout', key, '-out', cert,
      '-addext', 'subjectAltName=DNS:localhost',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement,keyCertSign',
      '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    const certPEM = fs.readFileSync(cert);
    const keyPEM = fs.readFileSync(key);
    const der64 = certPEM.toString().replace(/-----[^-]+-----/g, '').replace(/\s+/g, '').replace(/=+$/, '');
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(clientCertPEM), [{ private_key: keyPEM, cert_chain: certPEM }], true);
    return { creds, der64 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// serve serves entry ({kind, name, version, doc, schema, create}) as a
// Kite plugin until the host ends the process.
function serve(entry, { protocolVersion = PROTOCOL_VERSION } = {}) {
  if (!fromKite) {
    process.stderr.write('This is a Kite plugin: it is started by a Kite host, which reads its handshake.\n' +
      'Declare it in kite.hcl with command = ["node", "' + process.argv[1] + '"] (see sdk/node/README.md).\n');
    process.exit(1);
  }
  const services = { filter: pb.Filter, registry: pb.Registry };
  if (!services[entry.kind]) {
    // The Node SDK serves filters and registries so far; see README.md.
    logger.error(`the Node SDK serves filters and registries, not ${entry.kind}`);
    process.exit(1);
  }
  const offered = (process.env.PLUGIN_PROTOCOL_VERSIONS || '').split(',').filter(Boolean);
  if (!offered.includes(String(protocolVersion))) {
    logger.error(`the host offers bridge protocol version(s) ${offered.join(',') || '(none)'}; this plugin speaks ${protocolVersion}`);
    process.exit(1);
  }
  process.on('SIGINT', () => {}); // the host decides when its plugins stop
  const srv = new Server(entry);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_SIZE,
    'grpc.max_send_message_length': MAX_MESSAGE_SIZE,
  });
  server.addService(pb.Plugin.service, srv.handlersOf(pb.Plugin.service));
  server.addService(services[entry.kind].service, srv.handlersOf(services[entry.kind].service));
  server.addService({ Check: raw('/grpc.health.v1.Health/Check') }, {
    // HealthCheckResponse{status: SERVING}
    Check: (call, cb) => cb(null, Buffer.from([0x08, 0x01])),
  });
  const shutdown = () => {
    srv.releaseAll();
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  server.addService({ Shutdown: raw('/plugin.GRPCController/Shutdown') }, {
    Shutdown: (call, cb) => { cb(null, Buffer.alloc(0)); setImmediate(shutdown); },
  });
  process.on('SIGTERM', shutdown);
  let creds = grpc.ServerCredentials.createInsecure();
  let der64 = '';
  if (process.env.PLUGIN_CLIENT_CERT) ({ creds, der64 } = serverCredentials(process.env.PLUGIN_CLIENT_CERT));
  server.bindAsync('127.0.0.1:0', creds, (err, port) => {
    if (err) {
      logger.error(`cannot listen on 127.0.0.1: ${err.message}`);
      process.exit(1);
    }
    let line = `${CORE_PROTOCOL_VERSION}|${protocolVersion}|tcp|127.0.0.1:${port}|grpc`;
    if (der64) line += `|${der64}`;
    handshakeWrite(line + '\n');
    logger.debug('plugin serving', { kind: entry.kind, name: entry.name, port, mtls: !!der64 });
  });
}

module.exports = { Code, KiteError, Metadata, serve, log: logger, PROTOCOL_VERSION };
