#!/usr/bin/env python3
"""header: a Kite filter plugin in Python.

Client side: adds `header = value` to each call's metadata (unless the
caller set the header already). Server side: refuses calls whose header
is missing (Unauthenticated) or has another value (PermissionDenied),
except methods matching an `exempt` prefix. Both sides count the calls
they let through and report the running count of the call's method in
the trailer key `count_trailer` (when set), so a caller can see it.

    plugin "filter" "header" {
      command = ["/usr/bin/python3", "header_filter.py"]
      sha256  = "<sha256sum /usr/bin/python3>"
      files   = { "header_filter.py" = "<sha256sum header_filter.py>" }
    }
    filter "header" "tenant" {
      header        = "x-tenant"
      value         = "blue"
      count_trailer = "x-header-calls"
    }
"""
import os
import sys
import threading

# The SDK lives next to this directory; import it before anything that
# might write to stdout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kite_plugin as kp  # noqa: E402


class HeaderFilter(kp.Filter):
    def __init__(self, config):
        self.header = config.get("header") or ""
        self.value = config.get("value") or ""
        if not self.header or not self.value:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "header and value must be non-empty")
        self.exempt = list(config.get("exempt") or [])
        self.count_trailer = config.get("count_trailer") or ""
        self.lock = threading.Lock()
        self.counts = {}  # method -> calls let through
        self.refused = 0

    def before(self, call):
        if call.side == "client":
            if self.header not in call.meta:
                call.meta.set(self.header, self.value)
        elif not any(call.method.startswith(p) for p in self.exempt):
            got = call.meta.get(self.header, None)
            if got is None or got != self.value:
                with self.lock:
                    self.refused += 1
                if got is None:
                    raise kp.Error(kp.Code.UNAUTHENTICATED, "missing %s header" % self.header)
                raise kp.Error(kp.Code.PERMISSION_DENIED, "%s %r is not allowed" % (self.header, got))
        with self.lock:
            n = self.counts.get(call.method, 0) + 1
            self.counts[call.method] = n
        call.state["n"] = n
        return None

    def after(self, call, result):
        if self.count_trailer:
            call.trailer.set(self.count_trailer, str(call.state["n"]))
        return None

    def close(self):
        kp.log.debug("header filter closing", extra={"kv": {"methods": len(self.counts), "refused": self.refused}})


ENTRY = kp.Entry(
    kind="filter", name="header", version="1.0.0", new=HeaderFilter,
    doc="Adds a metadata header on the client side and requires it on the server side; counts calls.",
    schema=[
        kp.Field("header", "string", required=True, doc="metadata key, e.g. x-tenant"),
        kp.Field("value", "string", required=True, doc="the value clients send and servers require"),
        kp.Field("exempt", "list(string)", doc="method prefixes the server side lets through without the header"),
        kp.Field("count_trailer", "string", doc="trailer key reporting the running call count of the method"),
    ])

if __name__ == "__main__":
    kp.serve(ENTRY)
