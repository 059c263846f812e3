#!/usr/bin/env python3
"""py_weighted: a Kite balancer plugin in Python.

A balancer plugin is never asked per call: on each change of a client's
instance list the host sends the list, and this plugin answers one period
of a smooth weighted round-robin (nginx's) as a picking table; the host
walks the table for every call, in its own process. Weights are reduced
by their greatest common divisor; an instance without a weight counts as
100 (Kite's default).

    plugin "balancer" "py_weighted" {
      command = ["/usr/bin/python3", "wrr_balancer.py"]
      sha256  = "<sha256sum /usr/bin/python3>"
      files   = { "wrr_balancer.py" = "<sha256sum wrr_balancer.py>" }
    }
    client "orders" { balancer = "py_weighted" }
"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kite_plugin as kp  # noqa: E402

DEFAULT_WEIGHT = 100


class SmoothWeighted:
    name = "py_weighted"

    def __init__(self, config):
        self.max_period = int(config.get("max_period") or 65536)
        if self.max_period < 1:
            raise kp.Error(kp.Code.INVALID_ARGUMENT, "max_period must be at least 1")

    def build(self, instances):
        if not instances:
            return kp.PickTable()
        weights = [i.weight if i.weight > 0 else DEFAULT_WEIGHT for i in instances]
        g = 0
        for w in weights:
            g = math.gcd(g, w)
        weights = [w // g for w in weights]
        total = sum(weights)
        current = [0] * len(weights)
        schedule = []
        for _ in range(min(total, self.max_period)):
            best = 0
            for i, w in enumerate(weights):
                current[i] += w
                if current[i] > current[best]:
                    best = i
            current[best] -= total
            schedule.append(best)
        return kp.PickTable(schedule=schedule)

    def close(self):
        pass


ENTRY = kp.Entry(
    kind="balancer", name="py_weighted", version="1.0.0", new=SmoothWeighted,
    doc="Smooth weighted round-robin, as one picking table per instance list.",
    schema=[kp.Field("max_period", "number", doc="longest schedule sent (default 65536)")])

if __name__ == "__main__":
    kp.serve(ENTRY)
