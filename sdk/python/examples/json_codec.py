#!/usr/bin/env python3
"""pyjson: a Kite codec plugin in Python: compact UTF-8 JSON, wire id 201.

Values reach a codec plugin in canonical form (the JSON the Go host's
encoding/json produces) and leave it the same way, so a JSON codec is the
smallest codec there is: Marshal re-encodes the canonical JSON compactly,
Unmarshal checks the body is one JSON value and hands it back.

    plugin "codec" "pyjson" {
      command = ["/usr/bin/python3", "json_codec.py"]
      sha256  = "<sha256sum /usr/bin/python3>"
      files   = { "json_codec.py" = "<sha256sum json_codec.py>" }
    }
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kite_plugin as kp  # noqa: E402


class CompactJSON:
    name = "pyjson"
    id = 201

    def __init__(self, config):
        pass

    @staticmethod
    def _load(data, what):
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "pyjson: %s is not JSON: %s" % (what, e))

    def marshal(self, canonical):
        v = self._load(canonical, "canonical form")
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def unmarshal(self, data):
        self._load(data, "body")
        return data

    def close(self):
        pass


ENTRY = kp.Entry(kind="codec", name="pyjson", version="1.0.0", new=CompactJSON,
                 doc="Compact UTF-8 JSON, wire id 201.")

if __name__ == "__main__":
    kp.serve(ENTRY)
