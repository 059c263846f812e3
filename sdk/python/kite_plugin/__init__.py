"""Kite plugin SDK for Python.

A Kite out-of-process plugin is an executable the Kite host starts
through hashicorp/go-plugin's gRPC protocol (docs/PLUGIN-PROTOCOL.md).
This package does the parts every plugin needs, so a plugin is an Entry
and a call to serve():

    import kite_plugin as kp

    class Upper(kp.Filter):
        def __init__(self, config): ...
        def before(self, call): call.meta.set("x-seen", "1")

    kp.serve(kp.Entry(kind="filter", name="upper", version="1.0.0", new=Upper))

What serve() does: checks the magic cookie and the protocol versions the
host offers, serves gRPC on 127.0.0.1 (with mutual TLS when the host
sends PLUGIN_CLIENT_CERT: go-plugin's AutoMTLS), serves
grpc.health.v1.Health for "plugin" and go-plugin's GRPCController
(graceful shutdown), serves kite.plugin.v1.Plugin and the service of the
entry's kind, prints the one handshake line, and logs to stderr as hclog
JSON lines (the host re-logs them under the plugin's name).

stdout carries the handshake line and nothing else. When this module is
imported by a process the host started, it moves file descriptor 1 to
stderr at once: print() and C libraries writing to stdout end up in the
host's log instead of corrupting the handshake. Anything written to
stdout *before* this import still breaks the start (the host reports it),
so import kite_plugin first.
"""

import os
import sys

MAGIC_COOKIE_KEY = "KITE_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "8c7a0f3e-kite-plugin-bridge-1c5d92e4b6"
# go-plugin's core protocol version (the first field of the handshake line).
CORE_PROTOCOL_VERSION = 1
# The Kite bridge protocol (kiteplugin.proto) this SDK speaks.
PROTOCOL_VERSION = 1
# Bound of one message across the bridge, as the Go side sets it.
MAX_MESSAGE_SIZE = 128 << 20

_handshake_fd = None
if os.environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE:
    # Keep the real stdout for the handshake line only; everything else
    # that writes to fd 1 now writes to stderr.
    sys.stdout.flush()
    _handshake_fd = os.dup(1)
    os.dup2(2, 1)

import base64  # noqa: E402
import datetime  # noqa: E402
import enum  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from concurrent import futures  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

from . import kiteplugin_pb2 as pb  # noqa: E402

__all__ = [
    "Code", "Error", "Status", "Field", "Entry", "Instance", "Metadata", "Call",
    "Filter", "Registry", "Stop", "PickTable", "serve", "parse_duration", "log",
]

SDK = "python%d.%d kite-sdk-python grpcio-%s" % (sys.version_info[0], sys.version_info[1], grpc.__version__)

log = logging.getLogger("plugin")


class Code(enum.IntEnum):
    """Kite status codes; numerically equal to gRPC's."""
    OK = 0
    CANCELED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class Error(Exception):
    """An error of the plugin's implementation: reaches the host as an
    *spi.Error with this code, message and details."""

    def __init__(self, code, message, details=b""):
        super().__init__(message)
        self.code = Code(code)
        self.message = message
        self.details = details

    def __str__(self):
        return "%s: %s" % (self.code.name, self.message)


class Status:
    """A call result inside a message (filters): code 0 is success."""

    __slots__ = ("code", "message", "details")

    def __init__(self, code=Code.OK, message="", details=b""):
        self.code = Code(code)
        self.message = message
        self.details = details

    @property
    def ok(self):
        return self.code == Code.OK

    def __repr__(self):
        return "Status(%s, %r)" % (self.code.name, self.message)


class Field:
    """One attribute of the plugin's kite.hcl block. type is one of
    "string", "number", "bool", "duration", "list(string)", "map(string)";
    the host checks the block against these before the plugin sees it."""

    def __init__(self, name, type="string", required=False, doc=""):
        self.name, self.type, self.required, self.doc = name, type, required, doc


class Entry:
    """What a plugin serves: kind ("registry", "filter", "balancer",
    "codec" or "compressor"), name, version, doc, schema (Fields) and new,
    a callable that builds an implementation from the block's
    configuration (a dict decoded from JSON)."""

    KINDS = ("codec", "compressor", "registry", "balancer", "filter")

    def __init__(self, kind, name, new, version="0.0.0", doc="", schema=()):
        if kind not in self.KINDS:
            raise ValueError("kind %r is not one of %s" % (kind, ", ".join(self.KINDS)))
        self.kind, self.name, self.new = kind, name, new
        self.version, self.doc, self.schema = version, doc, list(schema)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s):
    """Seconds in a Go duration string ("250ms", "1m30s"): duration
    attributes reach the plugin in that form."""
    if isinstance(s, (int, float)):
        return float(s)
    s = s.strip()
    if s in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError("%r is not a duration (e.g. 250ms, 1.5s, 2m)" % s)
    return total


# ---------------------------------------------------------------- registry

class Instance:
    """One registered endpoint of a service."""

    __slots__ = ("service", "addr", "weight", "version", "zone", "tags", "metadata")

    def __init__(self, service="", addr="", weight=0, version="", zone="", tags=(), metadata=None):
        self.service, self.addr, self.weight = service, addr, int(weight)
        self.version, self.zone = version, zone
        self.tags = list(tags)
        self.metadata = dict(metadata or {})

    def key(self):
        return (self.service, self.addr)

    def to_dict(self):
        return {"service": self.service, "addr": self.addr, "weight": self.weight, "version": self.version,
                "zone": self.zone, "tags": list(self.tags), "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, d):
        return cls(d.get("service", ""), d.get("addr", ""), d.get("weight", 0), d.get("version", ""),
                   d.get("zone", ""), d.get("tags") or (), d.get("metadata") or {})

    def __eq__(self, other):
        return isinstance(other, Instance) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Instance(%r, %r, weight=%d)" % (self.service, self.addr, self.weight)

    def _to_pb(self):
        return pb.Instance(service=self.service, addr=self.addr, weight=self.weight, version=self.version,
                           zone=self.zone, tags=self.tags, metadata=self.metadata)

    @classmethod
    def _from_pb(cls, p):
        return cls(p.service, p.addr, p.weight, p.version, p.zone, p.tags, p.metadata)


class Stop:
    """Tells a registry's watch generator that the host stopped watching.
    on_set registers a callback run once when it is set (use it to wake a
    condition variable the generator waits on)."""

    def __init__(self):
        self._ev = threading.Event()
        self._lock = threading.Lock()
        self._cbs = []

    def is_set(self):
        return self._ev.is_set()

    def on_set(self, cb):
        with self._lock:
            if not self._ev.is_set():
                self._cbs.append(cb)
                return
        cb()

    def set(self):
        with self._lock:
            if self._ev.is_set():
                return
            self._ev.set()
            cbs, self._cbs = self._cbs, []
        for cb in cbs:
            cb()

    def wait(self, timeout=None):
        return self._ev.wait(timeout)


class Registry:
    """Base of a registry implementation. watch(service, stop) is a
    generator of full snapshots (lists of Instance): the first is the
    current set, each later one the whole set after a change, never the
    same set twice in a row. It must return soon after stop is set; if it
    returns on its own (the registry was closed) the host's watch ends
    with an error. close() withdraws what was registered through it."""

    def register(self, instance):
        raise Error(Code.UNIMPLEMENTED, "register is not implemented")

    def deregister(self, instance):
        raise Error(Code.UNIMPLEMENTED, "deregister is not implemented")

    def resolve(self, service):
        raise Error(Code.UNIMPLEMENTED, "resolve is not implemented")

    def watch(self, service, stop):
        raise Error(Code.UNIMPLEMENTED, "watch is not implemented")

    def close(self):
        pass


# ---------------------------------------------------------------- filter

class Metadata:
    """Ordered (key, value) pairs, as Kite metadata: keys may repeat."""

    __slots__ = ("pairs",)

    def __init__(self, pairs=()):
        self.pairs = [(k, v) for k, v in pairs]

    def get(self, key, default=""):
        for k, v in self.pairs:
            if k == key:
                return v
        return default

    def __contains__(self, key):
        return any(k == key for k, _ in self.pairs)

    def set(self, key, value):
        """Replace every value of key with value."""
        self.pairs = [(k, v) for k, v in self.pairs if k != key]
        self.pairs.append((key, value))

    def add(self, key, value):
        self.pairs.append((key, value))

    def delete(self, key):
        self.pairs = [(k, v) for k, v in self.pairs if k != key]

    def items(self):
        return list(self.pairs)

    def __len__(self):
        return len(self.pairs)

    def __repr__(self):
        return "Metadata(%r)" % (self.pairs,)

    def _to_pb(self):
        return [pb.MetaPair(key=k, value=v) for k, v in self.pairs]

    @classmethod
    def _from_pb(cls, ps):
        return cls((p.key, p.value) for p in ps)


class Call:
    """What a filter sees of a call: never the request or response
    values, which stay in the host. side is "client" or "server";
    deadline is a Unix time in seconds or None. before() may change meta;
    after() may change trailer. state is free for the filter's own use
    between before() and after() of the same call."""

    __slots__ = ("method", "side", "peer", "meta", "trailer", "one_way", "stream", "deadline", "state")

    def __init__(self, method="", side="client", peer="", meta=None, one_way=False, stream=False, deadline=None):
        self.method, self.side, self.peer = method, side, peer
        self.meta = meta if meta is not None else Metadata()
        self.trailer = Metadata()
        self.one_way, self.stream, self.deadline = one_way, stream, deadline
        self.state = {}

    @classmethod
    def _from_pb(cls, ci):
        dl = ci.deadline_unix_nano / 1e9 if ci.deadline_unix_nano else None
        return cls(ci.method, "server" if ci.side == 2 else "client", ci.peer, Metadata._from_pb(ci.meta),
                   ci.one_way, ci.stream, dl)


class Filter:
    """Base of a filter implementation.

    before(call): runs before the rest of the chain. Return None to let
    the call through (possibly with call.meta changed); raise Error (or
    return a Status with a non-zero code) to refuse it without running
    the chain; return Status() (code OK) to answer it successfully here.

    after(call, result): runs with the chain's result (a Status) and the
    call's trailer in call.trailer; return a Status to replace the result,
    or None to keep it. A filter that does not override after() costs
    one round trip per call instead of two."""

    def before(self, call):
        return None

    def after(self, call, result):
        return None

    def close(self):
        pass


# ---------------------------------------------------------------- balancer

class PickTable:
    """A balancer's answer for an instance list: a cyclic schedule of
    indexes and/or a consistent-hash ring of (hash, index) points sorted by
    hash, with the hash's name ("fnv1a64", "fnv1a64-splitmix64", "crc32")."""

    def __init__(self, schedule=(), ring=(), hash=""):
        self.schedule, self.ring, self.hash = list(schedule), list(ring), hash


# ---------------------------------------------------------------- logging

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
           logging.CRITICAL: "error"}


class _HclogHandler(logging.Handler):
    """Writes hclog JSON lines to stderr; go-plugin's host parses them and
    logs them again under the plugin's name and level."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def emit(self, record):
        try:
            level = _LEVELS.get(record.levelno, "trace" if record.levelno < logging.DEBUG else "error")
            ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            entry = {"@level": level, "@message": record.getMessage(),
                     "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"}
            if record.name not in ("plugin", "root"):
                entry["@module"] = record.name
            for k, v in (getattr(record, "kv", None) or {}).items():
                entry[k] = v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
            if record.exc_info:
                entry["error"] = "".join(traceback.format_exception(*record.exc_info)).strip()
            self.stream.write(json.dumps(entry) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _setup_logging():
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_HclogHandler(sys.stderr))
    root.setLevel(logging.DEBUG)


# ---------------------------------------------------------------- errors on the wire

_GRPC_CODES = {sc.value[0]: sc for sc in grpc.StatusCode}
_ERROR_DETAIL_URL = "type.googleapis.com/kite.plugin.v1.ErrorDetail"


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num, data):
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _rpc_status_bytes(code, message, details):
    """A google.rpc.Status (code, message, one Any holding a
    kite.plugin.v1.ErrorDetail), as gRPC carries it in the
    grpc-status-details-bin trailer. The marker tells the host the error
    is the implementation's own, not a failure of the bridge."""
    detail = any_pb2.Any(type_url=_ERROR_DETAIL_URL, value=pb.ErrorDetail(details=details).SerializeToString())
    out = _varint(1 << 3) + _varint(int(code))
    if message:
        out += _len_field(2, message.encode("utf-8"))
    return out + _len_field(3, detail.SerializeToString())


def _abort(context, err):
    code = err.code if err.code != Code.OK else Code.UNKNOWN
    context.set_trailing_metadata((("grpc-status-details-bin", _rpc_status_bytes(code, err.message, err.details)),))
    context.abort(_GRPC_CODES[int(code)], err.message)


def _app_error(exc):
    if isinstance(exc, Error):
        return exc
    return Error(Code.UNKNOWN, "%s: %s" % (type(exc).__name__, exc))


def _status_of(exc):
    e = _app_error(exc)
    return pb.Status(code=int(e.code) or int(Code.UNKNOWN), message=e.message, details=e.details)


# ---------------------------------------------------------------- server

_ABANDON_AFTER = 600.0  # seconds a filter call waits for an After that never comes


class _Server:
    def __init__(self, entry):
        self.entry = entry
        self.lock = threading.Lock()
        self.handles = {}
        self.calls = {}
        self.next_call = 0
        self.shutdown = threading.Event()

    # Each rpc runs through guard: implementation errors become app errors.
    def guard(self, fn):
        def handler(request, context):
            try:
                return fn(request, context)
            except Error as e:
                _abort(context, e)
            except Exception as e:  # noqa: BLE001
                log.error("%s failed", fn.__name__, exc_info=True)
                _abort(context, _app_error(e))
        return handler

    def impl(self, h):
        with self.lock:
            v = self.handles.get(h)
        if v is None:
            raise Error(Code.FAILED_PRECONDITION, "%s plugin %r: handle %d is not configured (plugin restarted?)"
                        % (self.entry.kind, self.entry.name, h))
        return v

    def release(self, h):
        with self.lock:
            v = self.handles.pop(h, None)
        if v is not None:
            v.close()

    def release_all(self):
        with self.lock:
            hs, self.handles = self.handles, {}
        for h, v in hs.items():
            try:
                v.close()
            except Exception:  # noqa: BLE001
                log.warning("closing handle %d", h, exc_info=True)

    # -- Plugin
    def Info(self, req, ctx):
        e = self.entry
        return pb.InfoResponse(protocol_version=PROTOCOL_VERSION, kind=e.kind, name=e.name, version=e.version,
                               doc=e.doc, sdk=SDK,
                               schema=[pb.Field(name=f.name, type=f.type, required=f.required, doc=f.doc)
                                       for f in e.schema])

    def Configure(self, req, ctx):
        try:
            cfg = json.loads(req.config_json or b"{}")
        except ValueError as ex:
            raise Error(Code.INVALID_ARGUMENT, "configuration is not JSON: %s" % ex)
        try:
            v = self.entry.new(cfg)
        except Error:
            raise
        except Exception as ex:  # noqa: BLE001
            raise Error(Code.INVALID_ARGUMENT, "%s %r: %s" % (self.entry.kind, self.entry.name, ex))
        with self.lock:
            old = self.handles.get(req.handle)
            self.handles[req.handle] = v
        if old is not None:
            old.close()
        return pb.ConfigureResponse(name=str(getattr(v, "name", "") or ""), id=int(getattr(v, "id", 0) or 0))

    def Release(self, req, ctx):
        self.release(req.handle)
        return pb.Empty()

    # -- Registry
    def Register(self, req, ctx):
        self.impl(req.handle).register(Instance._from_pb(req.instance))
        return pb.Empty()

    def Deregister(self, req, ctx):
        self.impl(req.handle).deregister(Instance._from_pb(req.instance))
        return pb.Empty()

    def Resolve(self, req, ctx):
        ins = self.impl(req.handle).resolve(req.service)
        return pb.Instances(instances=[i._to_pb() for i in ins])

    def Watch(self, req, ctx):
        # A server stream: a generator run by grpc; errors are raised from
        # inside it, so it has its own guard. stop is set when the host
        # cancels the stream or the connection goes away.
        stop = Stop()
        try:
            reg = self.impl(req.handle)
            ctx.add_callback(stop.set)
            gen = reg.watch(req.service, stop)
        except Error as e:
            _abort(ctx, e)
        try:
            for snap in gen:
                if stop.is_set():
                    return
                yield pb.Instances(instances=[i._to_pb() for i in snap])
        except Error as e:
            _abort(ctx, e)
        except Exception as e:  # noqa: BLE001
            log.error("watch of %r failed", req.service, exc_info=True)
            _abort(ctx, _app_error(e))
        finally:
            close = getattr(gen, "close", None)
            if close:
                close()
        if not stop.is_set():
            # The implementation ended the watch (its registry was closed):
            # an error of its own, so the host's watcher ends too.
            _abort(ctx, Error(Code.CANCELED, "watch of %r ended: the registry was closed" % req.service))

    def Close(self, req, ctx):
        self.release(req.handle)
        return pb.Empty()

    # -- Filter
    def Before(self, req, ctx):
        f = self.impl(req.handle)
        call = Call._from_pb(req.call)
        keys = call.meta.items()
        try:
            verdict = f.before(call)
        except Exception as e:  # noqa: BLE001 - a refusal
            if not isinstance(e, Error):
                log.error("filter before failed", exc_info=True)
            return pb.BeforeResponse(proceed=False, status=_status_of(e))
        changed = call.meta.items() != keys
        if verdict is not None:
            return pb.BeforeResponse(proceed=False, status=pb.Status(code=int(verdict.code), message=verdict.message,
                                                                    details=verdict.details),
                                     meta_changed=changed, meta=call.meta._to_pb())
        call_id = 0
        if getattr(type(f), "after", Filter.after) is not Filter.after:
            now = time.time()
            expires = call.deadline if call.deadline else now + _ABANDON_AFTER
            with self.lock:
                self.next_call += 1
                call_id = self.next_call
                self.calls[call_id] = (f, call, expires)
                if call_id % 1024 == 0:
                    for cid in [c for c, (_, _, exp) in self.calls.items() if exp < now]:
                        del self.calls[cid]
        return pb.BeforeResponse(proceed=True, meta_changed=changed, meta=call.meta._to_pb() if changed else (),
                                 call_id=call_id)

    def After(self, req, ctx):
        with self.lock:
            entry = self.calls.pop(req.call_id, None)
        if entry is None:
            raise Error(Code.NOT_FOUND, "filter plugin: call %d is unknown or expired" % req.call_id)
        f, call, _ = entry
        call.trailer = Metadata._from_pb(req.trailer)
        before = call.trailer.items()
        result = Status(req.result.code, req.result.message, req.result.details)
        try:
            out = f.after(call, result)
        except Exception as e:  # noqa: BLE001
            if not isinstance(e, Error):
                log.error("filter after failed", exc_info=True)
            out = _status_of(e)
            out = Status(out.code, out.message, out.details)
        if out is None:
            out = result
        changed = call.trailer.items() != before
        return pb.AfterResponse(result=pb.Status(code=int(out.code), message=out.message, details=out.details),
                                trailer_changed=changed, trailer=call.trailer._to_pb() if changed else ())

    # -- Balancer
    def Build(self, req, ctx):
        t = self.impl(req.handle).build([Instance._from_pb(i) for i in req.instances])
        return pb.PickTable(schedule=t.schedule, hash=t.hash,
                            ring=[pb.RingPoint(hash=h, index=i) for h, i in t.ring])

    # -- Codec
    def Marshal(self, req, ctx):
        return pb.CodecResponse(data=self.impl(req.handle).marshal(req.data))

    def Unmarshal(self, req, ctx):
        return pb.CodecResponse(data=self.impl(req.handle).unmarshal(req.data))

    # -- Compressor
    def Compress(self, req, ctx):
        return pb.CodecResponse(data=self.impl(req.handle).compress(req.data))

    def Decompress(self, req, ctx):
        out = self.impl(req.handle).decompress(req.data, req.max_size)
        if len(out) > req.max_size:
            raise Error(Code.RESOURCE_EXHAUSTED, "decompressed size exceeds %d bytes" % req.max_size)
        return pb.CodecResponse(data=out)

    # -- go-plugin's services
    def health_check(self, req, ctx):
        # grpc.health.v1.HealthCheckRequest{string service = 1}; answer
        # HealthCheckResponse{status: SERVING (1)} for "" and "plugin".
        service = b""
        if req[:1] == b"\x0a":
            n, i, shift = 0, 1, 0
            while i < len(req):
                b = req[i]
                n |= (b & 0x7F) << shift
                i += 1
                shift += 7
                if not b & 0x80:
                    break
            service = req[i:i + n]
        if service not in (b"", b"plugin"):
            ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service %r" % service.decode("utf-8", "replace"))
        return b"\x08\x01"

    def controller_shutdown(self, req, ctx):
        log.debug("host asked the plugin to shut down")
        self.shutdown.set()
        return b""

    def handlers(self):
        svc_of_kind = {"codec": "Codec", "compressor": "Compressor", "registry": "Registry",
                       "balancer": "Balancer", "filter": "Filter"}
        out = []
        for svc_name in ("Plugin", svc_of_kind[self.entry.kind]):
            svc = pb.DESCRIPTOR.services_by_name[svc_name]
            methods = {}
            for m in svc.methods:
                req_cls = getattr(pb, m.input_type.name)
                resp_cls = getattr(pb, m.output_type.name)
                fn = getattr(self, m.name)
                if m.server_streaming:
                    methods[m.name] = grpc.unary_stream_rpc_method_handler(
                        fn, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString)
                else:
                    methods[m.name] = grpc.unary_unary_rpc_method_handler(
                        self.guard(fn), request_deserializer=req_cls.FromString,
                        response_serializer=resp_cls.SerializeToString)
            out.append(grpc.method_handlers_generic_handler(svc.full_name, methods))
        raw = {"request_deserializer": None, "response_serializer": None}
        out.append(grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(self.health_check, **raw)}))
        out.append(grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": grpc.unary_unary_rpc_method_handler(self.controller_shutdown, **raw)}))
        return out


def _server_credentials(client_cert_pem):
    """go-plugin's AutoMTLS, plugin side: a fresh self-signed certificate
    for "localhost" (sent to the host in the handshake line), and only the
    host's certificate (PLUGIN_CLIENT_CERT) trusted for client auth."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kite plugin")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_agreement=True,
                                         key_cert_sign=True, content_commitment=False, data_encipherment=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert_pem.encode(),
                                        require_client_auth=True)
    der = cert.public_bytes(serialization.Encoding.DER)
    return creds, base64.b64encode(der).decode().rstrip("=")


def _not_from_kite():
    sys.stderr.write(
        "This is a Kite plugin: it is started by a Kite host, which reads its\n"
        "handshake. Declare it in kite.hcl, e.g.\n\n"
        "  plugin \"<kind>\" \"<name>\" {\n"
        "    command = [\"/usr/bin/python3\", \"%s\"]\n"
        "    sha256  = \"<sha256sum /usr/bin/python3>\"\n"
        "    files   = { \"%s\" = \"<sha256sum of this file>\" }\n"
        "  }\n\n" % (sys.argv[0], sys.argv[0]))
    sys.exit(1)


def serve(entry, max_workers=64, protocol_version=PROTOCOL_VERSION):
    """Serve entry as a Kite plugin until the host ends the process.

    max_workers bounds concurrent rpcs; each open registry watch holds one
    worker for its life. protocol_version is for tests of version
    negotiation only."""
    if _handshake_fd is None:
        _not_from_kite()
    _setup_logging()
    offered = [v for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v]
    if str(protocol_version) not in offered:
        log.error("the host offers bridge protocol version(s) %s; this plugin speaks %d",
                  ",".join(offered) or "(none)", protocol_version)
        sys.exit(1)
    # The host ends plugins itself (GRPCController.Shutdown, then a kill);
    # a Ctrl-C meant for the host must not kill its plugins first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    srv = _Server(entry)
    signal.signal(signal.SIGTERM, lambda *_: srv.shutdown.set())
    opts = [("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
            ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kite-rpc"),
                         handlers=srv.handlers(), options=opts)
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    cert_field = ""
    if client_cert:
        creds, cert_field = _server_credentials(client_cert)
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    if not port:
        log.error("cannot listen on 127.0.0.1")
        sys.exit(1)
    server.start()
    line = "%d|%d|tcp|127.0.0.1:%d|grpc" % (CORE_PROTOCOL_VERSION, protocol_version, port)
    if cert_field:
        line += "|" + cert_field
    os.write(_handshake_fd, (line + "\n").encode())
    log.debug("plugin serving", extra={"kv": {"kind": entry.kind, "name": entry.name, "port": port, "mtls": bool(cert_field)}})
    srv.shutdown.wait()
    srv.release_all()
    server.stop(grace=1.0).wait(2.0)
    sys.exit(0)
