# A plugin that never answers: no handshake line, ever.
import time

time.sleep(600)
