# A plugin that answers the handshake with bridge protocol version 2,
# which the host (speaking 1) does not offer.
import sys
import time

sys.stdout.write("1|2|tcp|127.0.0.1:1|grpc\n")
sys.stdout.flush()
time.sleep(60)
