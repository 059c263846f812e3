#!/usr/bin/env python3
"""pyzlib: a Kite compressor plugin in Python (zlib, RFC 1950).

Compressed bodies carry an Adler-32 checksum, so corruption is caught;
decompression stops one byte past the caller's bound (max_size), so a
"zip bomb" is refused without inflating it. Wire id 200 (third-party ids
are 64-255).

    plugin "compressor" "pyzlib" {
      command = ["/usr/bin/python3", "zlib_compressor.py"]
      sha256  = "<sha256sum /usr/bin/python3>"
      files   = { "zlib_compressor.py" = "<sha256sum zlib_compressor.py>" }
    }
    compression { compressor = "pyzlib" }
"""
import os
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kite_plugin as kp  # noqa: E402


class Zlib:
    name = "pyzlib"
    id = 200

    def __init__(self, config):
        self.level = int(config.get("level", 6))
        if not -1 <= self.level <= 9:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "level must be -1..9")

    def compress(self, data):
        return zlib.compress(data, self.level)

    def decompress(self, data, max_size):
        d = zlib.decompressobj()
        try:
            # One byte past the bound tells "too big" from "exactly max_size".
            out = d.decompress(data, max_size + 1)
        except zlib.error as e:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "pyzlib: corrupt body: %s" % e)
        if len(out) > max_size:
            raise kp.Error(kp.Code.RESOURCE_EXHAUSTED, "pyzlib: body inflates beyond %d bytes" % max_size)
        if not d.eof:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "pyzlib: truncated body")
        return out

    def close(self):
        pass


ENTRY = kp.Entry(
    kind="compressor", name="pyzlib", version="1.0.0", new=Zlib,
    doc="zlib (RFC 1950) compression, wire id 200.",
    schema=[kp.Field("level", "number", doc="zlib level, -1 (default) to 9")])

if __name__ == "__main__":
    kp.serve(ENTRY)
