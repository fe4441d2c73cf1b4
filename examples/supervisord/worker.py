"""A worker of examples/supervisord: takes a job every half second."""

import os
import signal
import sys
import time

number = sys.argv[1] if len(sys.argv) > 1 else "0"
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"worker {number} up in {os.environ.get('APP_ENV')} as "
      f"{os.environ.get('SUPERVISOR_PROCESS_NAME')}")
print(f"worker {number}: warnings go to stderr", file=sys.stderr, flush=True)
job = 0
while True:
    job += 1
    print(f"worker {number}: job {job} done")
    time.sleep(0.5)
