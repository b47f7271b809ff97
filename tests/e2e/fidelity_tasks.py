"""Celery app of the fidelity harness: the sample app plus one `sleep(d)` task that records
when it starts and ends.

Workers run `celery -A fidelity_tasks worker` (PYTHONPATH holds deploy/app and tests/e2e), so
the broker layout is the sample app's. Each record is a JSON object pushed to the Redis list
`fidelity:events` of the test's private redis-server (the broker):

    {"i": task index, "ev": "start"|"end", "t": epoch seconds, "w": worker hostname,
     "redelivered": kombu restored this message before (warm-shutdown or visibility restore)}
"""
from __future__ import annotations

import json
import os
import time

import redis

from app.celery_app import app

EVENTS = "fidelity:events"
_client = None


def _redis():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    return _client


def _record(task, i: int, ev: str, t: float) -> None:
    info = task.request.delivery_info or {}
    headers = task.request.headers or {}
    redelivered = bool(info.get("redelivered") or headers.get("redelivered"))
    _redis().rpush(EVENTS, json.dumps({"i": i, "ev": ev, "t": t, "w": task.request.hostname,
                                       "redelivered": redelivered}))


@app.task(bind=True, name="fidelity.sleep")
def sleep(self, i: int, duration: float):
    """Task `i` of the trace: sleeps `duration` seconds (its service time)."""
    _record(self, i, "start", time.time())
    time.sleep(duration)
    _record(self, i, "end", time.time())
