"""Tasks with controllable service time, failure and retry.

Each queue has its own task name (routed in celery_app.py), all with the same behaviour:

    duration      seconds the task sleeps (its service time)
    fail          raise TaskFailed after sleeping (result state FAILURE)
    retry_times   call self.retry() this many times before finishing (each retry is a new
                  message with an ETA `retry_delay` seconds later, on the same queue)
    retry_delay   countdown of each retry, seconds
    tag           free text echoed in the result, handy for tests

Callers can also send any of them to another queue with `apply_async(queue=...)`.
"""
from __future__ import annotations

import os
import socket
import time

from .celery_app import app


class TaskFailed(RuntimeError):
    """Raised on purpose when a task is asked to fail."""


def _run(task, duration: float, fail: bool, retry_times: int, retry_delay: float, tag: str | None):
    if duration > 0:
        time.sleep(duration)
    if task.request.retries < retry_times:
        raise task.retry(countdown=retry_delay, max_retries=retry_times)
    if fail:
        raise TaskFailed(f"asked to fail (tag={tag!r})")
    return {
        "tag": tag,
        "duration": duration,
        "retries": task.request.retries,
        "queue": (task.request.delivery_info or {}).get("routing_key"),
        "worker": task.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
    }


@app.task(bind=True, name="app.tasks.urgent")
def urgent(self, duration=0.0, fail=False, retry_times=0, retry_delay=1.0, tag=None):
    """A task for the `high` queue."""
    return _run(self, duration, fail, retry_times, retry_delay, tag)


@app.task(bind=True, name="app.tasks.process")
def process(self, duration=0.0, fail=False, retry_times=0, retry_delay=1.0, tag=None):
    """A task for the `default` queue."""
    return _run(self, duration, fail, retry_times, retry_delay, tag)


@app.task(bind=True, name="app.tasks.batch")
def batch(self, duration=0.0, fail=False, retry_times=0, retry_delay=1.0, tag=None):
    """A task for the `low` queue."""
    return _run(self, duration, fail, retry_times, retry_delay, tag)


@app.task(name="app.tasks.periodic_report")
def periodic_report():
    """Sent by beat every CELERY_BEAT_INTERVAL seconds to the `low` queue."""
    return {"at": time.time()}


TASK_FOR_QUEUE = {"high": urgent, "default": process, "low": batch}
