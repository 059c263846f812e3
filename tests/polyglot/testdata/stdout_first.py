# A plugin that writes to stdout before the SDK takes stdout over: the
# host reads this line where the handshake line should be.
print("starting the header filter...", flush=True)

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.environ["KITE_TEST_SDK"])
import kite_plugin as kp  # noqa: E402

kp.serve(kp.Entry(kind="filter", name="bad", new=lambda cfg: kp.Filter()))
