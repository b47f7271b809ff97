"""Celery-side helper run as a child process with the stack's environment.

It imports the sample app exactly as a producer or worker would (configured by CELERY_* env),
so what it publishes and what it reads are Celery's and kombu's own view:

    probe.py publish  --queue Q [--count N] [--priorities 0,1,..] [--countdown S] [--duration D] ...
    probe.py truth    --queues a,b [--workers N] [--timeout S]   # inspect active/reserved/scheduled + kombu sizes
    probe.py sizes    --queues a,b                                # kombu's own queue size only (no consume)
    probe.py results  ID [ID ...]                                 # result states from the backend
    probe.py produce  --queue Q --rate R --seconds S --out FILE    # paced producer (R=0: burst of --count)

Output: one JSON object on stdout.

Note: `truth` consumes a reply queue, and every kombu consumer runs the unacked restore sweep
with its own visibility_timeout when it starts polling. Do not call it while a test needs
stale entries to stay in `unacked`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import timezone


def _queue_of(request: dict) -> str:
    info = request.get("delivery_info") or {}
    return info.get("routing_key") or "?"


def cmd_publish(args) -> dict:
    from app.celery_app import app
    from app.tasks import TASK_FOR_QUEUE

    task = TASK_FOR_QUEUE.get(args.queue, TASK_FOR_QUEUE["default"])
    priorities = [None]
    if args.priorities:
        priorities = [int(p) for p in args.priorities.split(",")]
    kwargs = {"duration": args.duration, "fail": args.fail, "retry_times": args.retry_times,
              "retry_delay": args.retry_delay, "tag": args.tag}
    ids = []
    per_priority = Counter()
    with app.producer_or_acquire() as producer:
        for _ in range(args.count):
            for prio in priorities:
                options = {"queue": args.queue, "producer": producer}
                if prio is not None:
                    options["priority"] = prio
                if args.countdown is not None:
                    options["countdown"] = args.countdown
                ids.append(task.apply_async(kwargs=kwargs, **options).id)
                per_priority[str(prio)] += 1
    return {"queue": args.queue, "published": len(ids), "ids": ids, "per_priority": per_priority}


def _sizes(app, queues) -> dict:
    sizes = {}
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for q in queues:
            # kombu's Redis transport: Σ LLEN over the queue's priority keys (Channel._size).
            sizes[q] = int(channel._size(q))
    return sizes


def cmd_sizes(args) -> dict:
    from app.celery_app import app
    queues = args.queues.split(",")
    return {"kombu_size": _sizes(app, queues), "at": time.time()}


def cmd_truth(args) -> dict:
    from app.celery_app import app
    queues = args.queues.split(",")
    started = time.time()
    insp = app.control.inspect(timeout=args.timeout, limit=args.workers or None)
    active = insp.active() or {}
    reserved = insp.reserved() or {}
    scheduled = insp.scheduled() or {}
    out = {"workers": sorted(set(active) | set(reserved) | set(scheduled)), "queues": {},
           # Who answered each request: a worker missing from one reads as 0 there.
           "replied": {"active": sorted(active), "reserved": sorted(reserved),
                       "scheduled": sorted(scheduled)}}
    for q in queues:
        out["queues"][q] = {"active": 0, "reserved": 0, "scheduled": 0}
    for kind, replies, unwrap in (("active", active, False), ("reserved", reserved, False),
                                  ("scheduled", scheduled, True)):
        for _worker, items in replies.items():
            for item in items or []:
                req = item.get("request", {}) if unwrap else item
                q = _queue_of(req)
                out["queues"].setdefault(q, {"active": 0, "reserved": 0, "scheduled": 0})
                out["queues"][q][kind] += 1
    out["kombu_size"] = _sizes(app, queues)
    out["elapsed"] = round(time.time() - started, 3)
    return out


def cmd_produce(args) -> dict:
    """Publishes at a steady rate, paced on the monotonic clock (a late send goes out at once,
    the schedule is kept). Writes the wall-clock time of every send to --out: the ground truth
    of arrival rate and of the age of waiting tasks."""
    from app.celery_app import app
    from app.tasks import TASK_FOR_QUEUE

    task = TASK_FOR_QUEUE.get(args.queue, TASK_FOR_QUEUE["default"])
    kwargs = {"duration": args.duration}
    sent: list[float] = []
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
        start = time.monotonic()
        i = 0
        while True:
            if args.rate > 0:
                due = start + i / args.rate
                if due - start >= args.seconds:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            elif i >= args.count:
                break
            task.apply_async(kwargs=kwargs, queue=args.queue, producer=producer)
            sent.append(time.time())
            i += 1
        elapsed = time.monotonic() - start
    with open(args.out, "w") as fh:
        json.dump({"queue": args.queue, "rate": args.rate, "sent": sent}, fh)
    return {"queue": args.queue, "published": len(sent), "elapsed": round(elapsed, 3),
            "first": sent[0] if sent else None, "last": sent[-1] if sent else None}


def cmd_results(args) -> dict:
    from celery.result import AsyncResult
    from app.celery_app import app
    states = Counter()
    retries = []
    done = []
    for task_id in args.ids:
        res = AsyncResult(task_id, app=app)
        states[res.state] += 1
        if res.state == "SUCCESS" and isinstance(res.result, dict):
            retries.append(res.result.get("retries"))
        if res.date_done is not None:
            d = res.date_done
            if hasattr(d, "timestamp"):
                if d.tzinfo is None:  # Celery stores date_done in UTC
                    d = d.replace(tzinfo=timezone.utc)
                done.append(d.timestamp())
    done = [d for d in done if d is not None]
    return {"states": states, "retries": retries, "date_done_max": max(done) if done else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--queue", default="default")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--priorities")
    p.add_argument("--countdown", type=float)
    p.add_argument("--duration", type=float, default=0.0)
    p.add_argument("--fail", action="store_true")
    p.add_argument("--retry-times", type=int, default=0)
    p.add_argument("--retry-delay", type=float, default=1.0)
    p.add_argument("--tag")
    t = sub.add_parser("truth")
    t.add_argument("--queues", required=True)
    t.add_argument("--workers", type=int, default=0)
    t.add_argument("--timeout", type=float, default=2.0)
    s = sub.add_parser("sizes")
    s.add_argument("--queues", required=True)
    r = sub.add_parser("results")
    r.add_argument("ids", nargs="+")
    g = sub.add_parser("produce")
    g.add_argument("--queue", default="default")
    g.add_argument("--rate", type=float, default=0.0)
    g.add_argument("--seconds", type=float, default=0.0)
    g.add_argument("--count", type=int, default=0)
    g.add_argument("--duration", type=float, default=0.0)
    g.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = {"publish": cmd_publish, "truth": cmd_truth, "sizes": cmd_sizes,
              "results": cmd_results, "produce": cmd_produce}[args.cmd](args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
