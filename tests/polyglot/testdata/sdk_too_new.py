# A plugin built on an SDK that speaks only bridge protocol 2: the SDK
# refuses to start, saying why on stderr, before any handshake line.
import os
import sys

sys.path.insert(0, os.environ["KITE_TEST_SDK"])
import kite_plugin as kp  # noqa: E402

kp.serve(kp.Entry(kind="filter", name="bad", new=lambda cfg: kp.Filter()), protocol_version=2)
