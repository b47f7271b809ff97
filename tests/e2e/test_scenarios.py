"""End-to-end scenarios: the scaler's view (gRPC + `inspect --json`) against Celery's own
ground truth (remote-control inspect, kombu's queue size) and raw Redis.

Scaler semantics under test (contract): per queue backlog = Σ LLEN over the queue's keys,
reserved = unacked entries of the queue without future ETA and not stale, scheduled = future
ETA, stale = delivered more than visibilityTimeout ago; metric = Σ(backlog + reserved + stale);
active = backlog > activationListLength or anything reserved/stale. The server samples every
second, so values are polled with a deadline.
"""
from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from harness import run_inspect, wait_until

QUEUES = ["high", "default", "low"]
SETTLE = 15  # seconds to wait for the scaler to show a state that Redis already has


def q_view(ins: dict, queue: str) -> dict:
    q = ins["by_queue"][queue]
    return {k: q[k] for k in ("backlog", "reserved", "scheduled", "stale")}


def inspect_until(meta: dict, pred, what: str, timeout: float = SETTLE) -> dict:
    return wait_until(lambda: run_inspect(meta), pred, timeout, 0.3, what)


def view_until(scaler, meta: dict, pred, what: str, timeout: float = SETTLE) -> dict:
    return wait_until(lambda: scaler.view(meta), pred, timeout, 0.3, what)


def view_settles(scaler, meta: dict, want: dict, what: str) -> dict:
    """Waits for the view `want` (IsActive and GetMetrics are two calls: a sample can land
    between them), then checks it holds on the next reads: nothing changes meanwhile, so
    a flickering answer fails."""
    view = view_until(scaler, meta, lambda v: v == want, what)
    again = [scaler.view(meta) for _ in range(2)]
    assert again == [want, want], (what, again)
    return view


def agree(ours_fn, celery_fn, match, timeout: float = 20, what: str = "agreement"):
    """Read ours, then Celery's, then ours again; accept when ours did not move meanwhile and
    match(ours, celery) holds. Returns (ours, celery)."""
    deadline = time.monotonic() + timeout
    history = []
    while True:
        before = ours_fn()
        celery = celery_fn()
        after = ours_fn()
        if before == after and match(after, celery):
            return after, celery
        history.append({"ours_before": before, "celery": celery, "ours_after": after})
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s: {json.dumps(history[-3:], default=str)}")
        time.sleep(0.3)


# ------------------------------------------------------------------------------------------


def test_one_queue_no_workers(make_stack, scaler, record):
    stack = make_stack()
    meta = stack.metadata(["default"])

    idle = view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "idle on empty broker")
    spec = scaler.metric_spec(meta)
    assert spec.metricName == "celery-default"
    assert spec.targetSizeFloat == 5.0 and spec.targetSize == 5

    stack.publish("default", count=7)
    llen = stack.llen("default")
    kombu = stack.kombu_sizes(["default"])["default"]
    assert llen == kombu == 7, (llen, kombu)

    view = view_settles(scaler, meta, {"active": True, "metric": 7.0}, "active, metric 7")
    ins = run_inspect(meta)
    assert q_view(ins, "default") == {"backlog": 7, "reserved": 0, "scheduled": 0, "stale": 0}
    assert ins["decision"]["metric_value"] == 7.0 and ins["decision"]["active"] is True
    assert ins["decision"]["target"] == 5.0

    # activation: active only when backlog > activationListLength
    assert scaler.is_active(dict(meta, activationListLength="7")) is False
    assert scaler.is_active(dict(meta, activationListLength="6")) is True
    assert scaler.metric_spec(dict(meta, listLength="2.5")).targetSizeFloat == 2.5

    record("empty", idle)
    record("ours", {"grpc": view, "inspect": q_view(ins, "default")})
    record("celery", {"kombu_size": kombu})
    record("redis", {"llen": llen})


PRIORITY_LAYOUTS = {
    "default-steps": {},
    "ten-steps-colon": {"steps": tuple(range(10)), "sep": ":"},
    "steps-0-5-pipe": {"steps": (0, 5), "sep": "|"},
}


@pytest.mark.parametrize("layout_name", list(PRIORITY_LAYOUTS))
def test_priorities_every_subqueue(layout_name, make_stack, scaler, record):
    stack = make_stack(**PRIORITY_LAYOUTS[layout_name])
    meta = stack.metadata(QUEUES)
    if layout_name == "default-steps":  # the defaults spelled out, separator in escaped text form
        meta.update(prioritySteps="0,3,6,9", prioritySeparator="\\x06\\x16")
    per_queue = {"high": 1, "default": 2, "low": 3}  # times each priority 0..9 is sent
    for q, n in per_queue.items():
        stack.publish(q, count=n, priorities=list(range(10)))

    # Celery put the tasks where we expect kombu to (this checks our model of Celery).
    expected_keys = {}
    for q, n in per_queue.items():
        exp = {k.decode("latin-1"): 0 for k in stack.layout.keys(q)}
        for p in range(10):
            exp[stack.layout.key_for_priority(q, p).decode("latin-1")] += n
        expected_keys[q] = exp
        assert stack.llen_per_key(q) == exp, q
    sub_keys_used = sum(1 for q in QUEUES for k, v in expected_keys[q].items() if v and k != q)
    assert sub_keys_used >= len(QUEUES), "priority sub-queues were not exercised"

    kombu = stack.kombu_sizes(QUEUES)
    assert kombu == {q: 10 * n for q, n in per_queue.items()}, kombu
    total = sum(kombu.values())

    view = view_settles(scaler, meta, {"active": True, "metric": float(total)}, f"active, metric {total}")
    ins = run_inspect(meta)
    for q in QUEUES:
        assert q_view(ins, q) == {"backlog": kombu[q], "reserved": 0, "scheduled": 0, "stale": 0}, q
    assert ins["decision"]["metric_value"] == float(total)

    keda_redis_view = {q: int(stack.r.llen(q)) for q in QUEUES}  # LLEN of the base key only
    assert sum(keda_redis_view.values()) < total
    record("ours", {"grpc": view, "inspect": {q: q_view(ins, q)["backlog"] for q in QUEUES}})
    record("celery", {"kombu_size": kombu})
    record("redis", {"llen_per_key": expected_keys})
    record("keda_redis_scaler_would_see", keda_redis_view)


def test_keyprefix_and_nonzero_db(make_stack, scaler, record):
    stack = make_stack(db=5, prefix="myapp:")
    meta = stack.metadata(QUEUES)
    assert meta["databaseIndex"] == "5" and meta["keyPrefix"] == "myapp:"
    stack.start_worker("w1", "low", concurrency=1)
    stack.publish("high", count=4)
    stack.publish("default", count=6, priorities=[6])
    stack.publish("low", count=3, duration=30)

    want = {"high": {"backlog": 4, "reserved": 0, "scheduled": 0, "stale": 0},
            "default": {"backlog": 6, "reserved": 0, "scheduled": 0, "stale": 0},
            "low": {"backlog": 2, "reserved": 1, "scheduled": 0, "stale": 0}}
    ins = inspect_until(meta, lambda i: {q: q_view(i, q) for q in QUEUES} == want, "prefixed layout seen")
    view = view_settles(scaler, meta, {"active": True, "metric": 13.0}, "active, metric 13")

    truth = stack.celery_truth(QUEUES, workers=1)
    assert truth["kombu_size"] == {"high": 4, "default": 6, "low": 2}
    assert truth["queues"]["low"]["active"] + truth["queues"]["low"]["reserved"] == 1

    # The keys really are prefixed and in db 5; db 0 is untouched.
    assert stack.r.llen("myapp:high") == 4 and stack.r.llen(b"myapp:default\x06\x166") == 6
    assert stack.redis.client(0).dbsize() == 0
    # Controls: the same queues read without the prefix or from db 0 are empty.
    no_prefix = run_inspect({k: v for k, v in meta.items() if k != "keyPrefix"})
    db0 = run_inspect(dict(meta, databaseIndex="0"))
    assert all(q["backlog"] == 0 and q["reserved"] == 0 for q in no_prefix["queues"] + db0["queues"])

    record("ours", {"grpc": view, "inspect": {q: q_view(ins, q) for q in QUEUES}})
    record("celery", truth)
    record("redis", {"llen": stack.raw_view(QUEUES)["llen"], "hlen_unacked": stack.hlen_unacked()})


def test_prefetch4_early_ack_long_task(make_stack, scaler, record):
    stack = make_stack(prefetch_multiplier=4, acks_late=False)
    meta = stack.metadata(["default"])
    stack.start_worker("w1", "default", concurrency=1)
    stack.publish("default", count=5, duration=60)

    want = {"backlog": 0, "reserved": 4, "scheduled": 0, "stale": 0}
    ins = inspect_until(meta, lambda i: q_view(i, "default") == want, "4 reserved, 0 backlog")
    truth = stack.celery_truth(["default"], workers=1)
    tq = truth["queues"]["default"]
    assert tq["reserved"] == 4 and tq["active"] == 1, truth
    assert truth["kombu_size"]["default"] == 0

    samples = []
    for _ in range(4):  # stays active over several sampling ticks while LLEN reads 0
        view = scaler.view(meta)
        llen = stack.llen("default")
        samples.append({"grpc": view, "llen": llen, "hlen_unacked": stack.hlen_unacked()})
        assert llen == 0
        assert view == {"active": True, "metric": 4.0}, samples
        time.sleep(1)

    record("ours", {"inspect": q_view(ins, "default"), "grpc_samples": samples})
    record("celery", truth)
    record("keda_redis_scaler_would_see", {"llen": 0})
    record("note", "the running task is acked (early ack) and is in no Redis key: 5 tasks, metric 4")


def test_acks_late_prefetch1_reserved_equals_running(make_stack, scaler, record):
    stack = make_stack()  # app defaults: acks_late, prefetch multiplier 1
    meta = stack.metadata(["default"])
    stack.start_worker("w1", "default", concurrency=2)
    stack.publish("default", count=6, duration=4)

    want = {"backlog": 4, "reserved": 2, "scheduled": 0, "stale": 0}
    ins = inspect_until(meta, lambda i: q_view(i, "default") == want, "backlog 4 reserved 2")
    ours, truth = agree(lambda: q_view(run_inspect(meta), "default"),
                        lambda: stack.celery_truth(["default"], workers=1),
                        lambda o, t: o["reserved"] == t["queues"]["default"]["active"]
                        + t["queues"]["default"]["reserved"], what="reserved = celery active+reserved")
    assert truth["queues"]["default"]["active"] == 2, truth

    samples = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        metric = scaler.metric(meta)  # answer from a snapshot taken before the inspect below
        t = stack.celery_truth(["default"], workers=1)
        running = t["queues"]["default"]["active"]
        samples.append({"metric": metric, "celery_active": running,
                        "celery_reserved": t["queues"]["default"]["reserved"],
                        "kombu_size": t["kombu_size"]["default"]})
        assert metric >= running, samples
        if metric == 0 and running == 0 and t["kombu_size"]["default"] == 0:
            break
    else:
        raise AssertionError(f"queue did not drain: {samples}")
    final = view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "idle after drain")
    assert stack.hlen_unacked() == 0 and stack.llen("default") == 0

    record("ours", {"inspect": q_view(ins, "default"), "agreed": ours, "final": final})
    record("celery", truth)
    record("drain_samples_metric_vs_running", samples)


def test_eta_tasks_are_scheduled_not_demand(make_stack, scaler, record):
    stack = make_stack()
    meta = stack.metadata(["default"])
    stack.start_worker("w1", "default", concurrency=1)
    # Long enough for the checks below on a loaded machine (an inspect can be asked again).
    countdown = 25
    t_pub = time.time()  # before the publish: the ETA is no earlier than this + countdown
    stack.publish("default", count=3, countdown=countdown, duration=3)

    want = {"backlog": 0, "reserved": 0, "scheduled": 3, "stale": 0}
    ins = inspect_until(meta, lambda i: q_view(i, "default") == want, "3 scheduled")
    view = view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "ETA not demand")
    truth = stack.celery_truth(["default"], workers=1)
    entries = stack.unacked_entries()
    assert time.time() - t_pub < countdown, "too slow: ETA already reached while checking"
    assert truth["queues"]["default"]["scheduled"] == 3, truth
    assert len(entries) == 3 and all(e["eta"] for e in entries), entries

    # Once the ETA passes the same entries are work now: reserved (acks_late holds them).
    ins_due = inspect_until(meta, lambda i: q_view(i, "default")["scheduled"] == 0
                            and q_view(i, "default")["reserved"] >= 2, "ETA reached -> reserved",
                            timeout=countdown + 10)
    view_due = view_until(scaler, meta, lambda v: v["active"] and v["metric"] >= 2, "active after ETA")
    done = view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "drained", timeout=30)

    record("ours", {"before_eta": {"inspect": q_view(ins, "default"), "grpc": view},
                    "after_eta": {"inspect": q_view(ins_due, "default"), "grpc": view_due},
                    "end": done})
    record("celery", truth)
    record("redis", {"unacked_with_eta": len(entries), "llen": 0})


def test_sigkill_worker_stale_until_restored(make_stack, scaler, record):
    vt = 6
    stack = make_stack(visibility_timeout=vt)
    meta = stack.metadata(["default"])
    assert meta["visibilityTimeout"] == str(vt)
    worker_a = stack.start_worker("a", "default", concurrency=2)
    stack.publish("default", count=6, duration=120)

    live = {"backlog": 4, "reserved": 2, "scheduled": 0, "stale": 0}
    ins_live = inspect_until(meta, lambda i: q_view(i, "default") == live, "2 reserved by worker a")
    # Celery's view now, well before the VT (its inspect would sweep stale entries later on).
    truth_live = stack.celery_truth(["default"], workers=1)
    assert truth_live["queues"]["default"]["active"] == 2, truth_live

    worker_a.signal_group(signal.SIGKILL)
    worker_a.popen.wait(timeout=10)
    t_kill = time.monotonic()
    assert stack.hlen_unacked() == 2

    stale = {"backlog": 4, "reserved": 0, "scheduled": 0, "stale": 2}
    ins_stale = inspect_until(meta, lambda i: q_view(i, "default") == stale, "2 stale", timeout=vt + 10)
    t_stale = round(time.monotonic() - t_kill, 1)
    held = []
    for _ in range(3):  # nothing restores them while no kombu consumer runs: still counted
        view = scaler.view(meta)
        held.append({"grpc": view, "inspect": q_view(run_inspect(meta), "default"),
                     "llen": stack.llen("default"), "hlen_unacked": stack.hlen_unacked()})
        assert view == {"active": True, "metric": 6.0}, held
        assert held[-1]["inspect"] == stale and held[-1]["hlen_unacked"] == 2, held
        time.sleep(1)

    # A new worker's consumer sweeps unacked at start-up and RPUSHes the stale entries back.
    stack.start_worker("b", "default", concurrency=1)
    restored = {"backlog": 5, "reserved": 1, "scheduled": 0, "stale": 0}
    ins_restored = inspect_until(meta, lambda i: q_view(i, "default") == restored, "restored")
    view_restored = view_until(scaler, meta, lambda v: v == {"active": True, "metric": 6.0}, "metric 6")
    items = [json.loads(x) for x in stack.r.lrange("default", 0, -1)]
    redelivered = sum(1 for m in items if m["headers"].get("redelivered"))
    truth_after = stack.celery_truth(["default"], workers=1)
    assert truth_after["queues"]["default"]["active"] == 1, truth_after
    assert truth_after["kombu_size"]["default"] == 5
    assert redelivered >= 1

    record("ours", {"live": q_view(ins_live, "default"), "stale": q_view(ins_stale, "default"),
                    "stale_seen_after_kill_s": t_stale, "held": held,
                    "restored": q_view(ins_restored, "default"), "grpc_restored": view_restored})
    record("celery", {"before_kill": truth_live, "after_restore": truth_after})
    record("redis", {"redelivered_in_list": redelivered, "llen_after": stack.llen("default"),
                     "hlen_unacked_after": stack.hlen_unacked()})


def test_beat_periodic_tasks_counted(make_stack, scaler, record):
    stack = make_stack()
    meta = stack.metadata(["low"])
    beat = stack.start_beat(CELERY_BEAT_INTERVAL="1")
    seen = []

    def sample():
        v = scaler.view(meta)
        seen.append(v["metric"])
        return v
    view_until(scaler, meta, lambda v: v["metric"] >= 3, "3 periodic tasks counted", timeout=30)
    for _ in range(3):
        sample()
        time.sleep(0.5)
    beat.stop(signal.SIGTERM)
    # Beat logs "Sending due task" before it publishes: a SIGTERM between the two leaves one
    # logged send unpublished. What Redis holds (no worker runs) is what was sent.
    logged = beat.log_text().count("Sending due task periodic-report")
    sent = stack.llen("low")
    assert sent >= 3 and sent in (logged, logged - 1), (sent, logged, beat.tail())
    ins = inspect_until(meta, lambda i: q_view(i, "low")["backlog"] == sent, f"backlog = {sent} sent by beat")
    view = view_until(scaler, meta, lambda v: v["metric"] == float(sent), f"metric {sent}")
    kombu = stack.kombu_sizes(["low"])["low"]
    assert kombu == stack.llen("low") == sent
    assert seen == sorted(seen), f"backlog went down with no worker: {seen}"

    stack.start_worker("w1", "low", concurrency=1)
    done = view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "drained")
    record("ours", {"inspect": q_view(ins, "low"), "grpc": view, "rising_metric": seen, "after_worker": done})
    record("celery", {"beat_sent": sent, "beat_logged": logged, "kombu_size": kombu})


def test_web_burst_active_until_last_ack(make_stack, scaler, record):
    stack = make_stack(results=True)
    meta = stack.metadata(["default"])
    stack.start_worker("w1", "default", concurrency=2)
    _web, url = stack.start_web()
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").status_code == 200
    assert httpx.post(url + "/enqueue/nope", json={"count": 1}).status_code == 422
    assert httpx.post(url + "/enqueue/default", json={"count": 0}).status_code == 422
    view_until(scaler, meta, lambda v: v == {"active": False, "metric": 0.0}, "idle before burst")

    n = 20
    resp = httpx.post(url + "/enqueue/default", json={"count": n, "duration": 0.4}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["queued"] == n and len(body["task_ids"]) == n

    # Snapshots are taken in time order. Until the scaler first reports active, its latest
    # snapshot may predate the burst; after that every snapshot is post-burst, and the work
    # in Redis only decreases, so work seen in Redis *after* an RPC existed at its snapshot.
    samples, violations = [], []
    t0 = time.time()
    first_active = first_idle = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        v = scaler.view(meta)        # ours first ...
        raw = stack.raw_view(["default"])  # ... then Redis
        outstanding = raw["llen"]["default"] + raw["hlen_unacked"]
        samples.append({"t": round(time.time() - t0, 2), **v, "redis_outstanding": outstanding})
        if v["active"] and first_active is None:
            first_active = time.time() - t0
        if first_active is not None and not v["active"] and outstanding > 0:
            violations.append(samples[-1])
        if not v["active"] and v["metric"] == 0 and outstanding == 0:
            first_idle = first_idle or time.time()
            if time.time() - first_idle > 1.5:
                break
        time.sleep(0.2)
    assert first_active is not None and first_active < 3, f"slow to activate: {samples[:15]}"
    assert first_idle, f"never went idle: {samples[-5:]}"
    assert not violations, violations
    assert any(s["active"] and s["metric"] >= 5 for s in samples), samples[:10]

    res = stack.probe("results", *body["task_ids"])
    assert res["states"] == {"SUCCESS": n}, res
    last_done = res["date_done_max"]
    assert first_idle >= last_done, (first_idle, last_done)
    ins = run_inspect(meta)
    assert q_view(ins, "default") == {"backlog": 0, "reserved": 0, "scheduled": 0, "stale": 0}

    record("ours", {"peak_metric": max(s["metric"] for s in samples),
                    "first_active_after_burst_s": round(first_active, 2),
                    "idle_after_last_done_s": round(first_idle - last_done, 3), "samples": samples})
    record("celery", {"results": res["states"]})


def test_app_task_failure_and_retry(make_stack, record):
    stack = make_stack(results=True)
    stack.start_worker("w1", "high", concurrency=2)
    ok = stack.publish("high", count=1, duration=0.2)["ids"]
    failing = stack.publish("high", count=1, fail=True)["ids"]
    retried = stack.publish("high", count=1, retry_times=2, retry_delay=0.5)["ids"]

    def states():
        return {name: stack.probe("results", *ids) for name, ids in
                (("ok", ok), ("failing", failing), ("retried", retried))}
    final = wait_until(states, lambda s: s["ok"]["states"] == {"SUCCESS": 1}
                       and s["failing"]["states"] == {"FAILURE": 1}
                       and s["retried"]["states"] == {"SUCCESS": 1}, 30, 0.5, "task outcomes")
    assert final["retried"]["retries"] == [2] and final["ok"]["retries"] == [0]
    record("celery", final)
