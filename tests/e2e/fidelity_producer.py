"""Producer of the fidelity harness, run as a child process with the stack's environment.

    fidelity_producer.py TRACE.json T0 OUT.json

TRACE.json is a list of [offset, duration, priority]; task i is sent to the `default` queue at
epoch T0 + offset as `fidelity.sleep(i, duration)` with that priority. OUT.json receives the
epoch time at which each send began (the wait of a task is its start minus this time).
"""
from __future__ import annotations

import json
import sys
import time

from fidelity_tasks import sleep


def main() -> int:
    trace = json.loads(open(sys.argv[1]).read())
    t0 = float(sys.argv[2])
    sent = []
    sleep.app.connection_for_write().ensure_connection(max_retries=3)
    with sleep.app.producer_pool.acquire(block=True) as producer:
        for i, (offset, duration, priority) in enumerate(trace):
            delay = t0 + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            sleep.apply_async(args=[i, duration], queue="default", priority=priority,
                              producer=producer)
            sent.append(t)
    with open(sys.argv[3], "w") as fh:
        json.dump(sent, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
