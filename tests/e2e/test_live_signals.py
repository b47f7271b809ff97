"""Accuracy of the live signals (issue 4, "Accuracy and cost targets") against real Celery.

One scenario per counting mode (module-scoped, so the ~40 s of load is paid once per mode):
a private redis-server with keyspace notifications on (`--notify-keyspace-events Kl`, exact
mode) or off (estimated mode), the real scaler (`serve`, 1 s tick, 30 s signal window) and
real Celery processes:

    queue `high`     paced producer at 50 tasks/s, worker `fast@e2e` (-c 2) keeping up
    queue `low`      paced producer at 150 tasks/s, no worker (the oldest task waits)
    queue `default`  240 tasks of 0.5 s published at once, worker `svc@e2e` (-c 2, acks_late,
                     prefetch 1): busy for the whole window (60 s of work)
    queue `work`     the same load, worker `res@e2e`, but no trigger names its workers: the
                     service time can only come from `unacked`
    queue `run`      tasks of 60 s, worker `run@e2e` (-c 4, early ack): 2 running, then 3

The server's view is read while it runs: triggers are registered with GetMetrics (with
`workerHostnames` for `high`, `run` and `default`: the sampler credits those workers'
heartbeats to the queue, and the heartbeat running gauge is exported),
and the numbers come from the admin `/metrics` (`celery_scaler_queue_*`,
`celery_scaler_signal_mode`); `inspect` is one-shot and has no rates. The ground truth is
measured independently: every send's wall-clock time (written by the producers), the worker's
own "succeeded in" runtimes, and Celery's `inspect active`. The tests then compare; each
prints and records ours vs truth in .work/e2e-results.json.
"""
from __future__ import annotations

import json
import re
import statistics
import time
from bisect import bisect_right
from dataclasses import dataclass, field

import httpx
import pytest

from harness import (E2E_DIR, PY, WORK, APP_DIR, CeleryLayout, CeleryStack, ProcessManager,
                     Scaler, wait_until)

WINDOW = 30.0        # the scaler's signal window (SamplerSettings::signal_window default)
TICK = 1.0           # sample_interval_seconds default
PRODUCE_SECONDS = 38.0
RATES = {"high": 50.0, "low": 150.0}
SVC_TASKS, SVC_DURATION = 240, 0.5
SVC_QUEUES = {"default": "svc", "work": "res"}  # queue -> worker consuming it
RUN_DURATION = 60.0
ARRIVAL_TOLERANCE = {"exact": 0.10, "estimated": 0.25}
SERVICE_TOLERANCE = 0.25
WAIT_RELATIVE = 0.20


# ------------------------------------------------------------------------------------------
# /metrics parsing

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def live_view(text: str, port: int, queues: list[str]) -> dict:
    """Per queue: the live gauges and the active mode of each signal, for the broker on `port`."""
    gauges = {"celery_scaler_queue_arrival_rate": "arrival_rate",
              "celery_scaler_queue_dequeue_rate": "dequeue_rate",
              "celery_scaler_queue_service_time_seconds": "service_time",
              "celery_scaler_queue_service_time_p95_seconds": "service_time_p95",
              "celery_scaler_queue_wait_seconds": "wait",
              "celery_scaler_queue_running": "running"}
    view = {q: {"modes": {}} for q in queues}
    sample_age = None
    for name, labels, value in parse_metrics(text):
        if f":{port}" not in labels.get("broker", ""):
            continue
        if name == "celery_scaler_sample_age_seconds":
            sample_age = value
        q = labels.get("queue")
        if q not in view:
            continue
        if name in gauges:
            view[q][gauges[name]] = value
        elif name == "celery_scaler_signal_mode" and value == 1.0:
            view[q]["modes"][labels["signal"]] = labels["mode"]
    view["_sample_age"] = sample_age
    return view


# ------------------------------------------------------------------------------------------
# The scenario


@dataclass
class Run:
    mode: str
    port: int = 0
    readings: list = field(default_factory=list)       # {"t": read time, "ts": sample time, "view", "llen"}
    sends: dict = field(default_factory=dict)          # queue -> sorted wall-clock send times
    producers: dict = field(default_factory=dict)      # queue -> produce summary
    running_checks: list = field(default_factory=list)
    svc_runtimes: dict = field(default_factory=dict)  # queue -> the worker's own runtimes
    mode_wait: float = 0.0


def _produce(stack: CeleryStack, pm: ProcessManager, queue: str, out, **opts):
    argv = [PY, str(E2E_DIR / "probe.py"), "produce", "--queue", queue, "--out", str(out)]
    for k, v in opts.items():
        argv += [f"--{k}", str(v)]
    return pm.start(f"produce-{queue}", argv, env=stack.env(), cwd=APP_DIR)


def _read_summary(proc) -> dict:
    lines = [ln for ln in proc.log_text().splitlines() if ln.startswith("{")]
    assert proc.popen.returncode == 0 and lines, f"{proc.name} failed:\n{proc.tail()}"
    return json.loads(lines[-1])


SUCCEEDED = re.compile(r"Task app\.tasks\.\w+\[[^\]]+\] succeeded in ([0-9.]+)s")


def run_scenario(mode: str, grpc_modules) -> Run:
    run = Run(mode)
    logdir = WORK / "logs" / f"live-signals-{mode}"
    if logdir.exists():
        for p in sorted(logdir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    pm = ProcessManager(logdir)
    try:
        layout = CeleryLayout(redis_args=("--notify-keyspace-events", "Kl") if mode == "exact" else ())
        stack = CeleryStack(pm, layout)
        run.port = stack.redis.port
        flags = stack.r.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert (set("Kl") <= set(flags)) == (mode == "exact"), flags
        scaler = Scaler(pm, *grpc_modules)

        workers = [stack.start_worker("fast", "high", concurrency=2, wait=False),
                   stack.start_worker("svc", "default", concurrency=2, wait=False),
                   stack.start_worker("res", "work", concurrency=2, wait=False),
                   stack.start_worker("run", "run", concurrency=4, wait=False,
                                      CELERY_TASK_ACKS_LATE="false")]
        for w in workers:
            wait_until(lambda w=w: stack._ready(w), bool, 60, 0.2, f"{w.name} ready")

        metas = {"all": stack.metadata(["high", "low", "default"]),
                 "fast": stack.metadata(["high"], workerHostnames="fast@*"),
                 "svc": stack.metadata(["default"], workerHostnames="svc@*"),
                 "work": stack.metadata(["work"]),
                 "run": stack.metadata(["run"], workerHostnames="run@*")}

        def poke():
            for meta in metas.values():
                scaler.metric(meta)

        def view():
            poke()
            t = time.time()
            v = live_view(scaler.admin_metrics(), run.port, ["high", "low", "default", "work", "run"])
            return t, v

        # Watch sets registered before any task is published; wait for the counting mode.
        started = time.monotonic()
        expected = "exact" if mode == "exact" else "estimated"
        wait_until(lambda: view()[1],
                   lambda v: all(v[q]["modes"].get("arrival_rate") == expected for q in ("high", "low")),
                   20, 0.5, f"arrival_rate mode {expected} on high and low")
        run.mode_wait = round(time.monotonic() - started, 2)

        # Load: sleeping tasks for `svc` and `res`, 2 long tasks for `run`, then the paced
        # producers.
        svc = {q: _produce(stack, pm, q, logdir / f"sent-{q}.json", count=SVC_TASKS,
                           duration=SVC_DURATION) for q in SVC_QUEUES}
        stack.publish("run", count=2, duration=RUN_DURATION)
        for q, p in svc.items():
            p.popen.wait(timeout=60)
            run.producers[q] = _read_summary(p)
        prods = {q: _produce(stack, pm, q, logdir / f"sent-{q}.json", rate=r, seconds=PRODUCE_SECONDS)
                 for q, r in RATES.items()}
        t0 = time.monotonic()

        def read():
            t, v = view()
            age = v.pop("_sample_age")
            llen = {q: stack.llen(q) for q in ("high", "low", "default", "work")}
            run.readings.append({"t": t, "ts": t - (age or 0.0), "sample_age": age, "view": v,
                                 "llen": llen, "elapsed": round(time.monotonic() - t0, 2)})

        def running_round(expected_running: int) -> dict:
            before = view()[1]["run"].get("running"), view()[1]["default"].get("running")
            # Wait for every worker's reply (4 workers; a loaded machine can take seconds): a
            # reply missing from `inspect active` would read as 0 running tasks.
            truth = stack.celery_truth(["run", "default"], workers=len(workers), timeout=6.0,
                                       attempts=1)
            after = view()[1]["run"].get("running"), view()[1]["default"].get("running")
            return {
                "default_llen_after": stack.llen("default"),
                "elapsed": round(time.monotonic() - t0, 2), "published_run": expected_running,
                "ours_before": {"run": before[0], "default": before[1]},
                "ours_after": {"run": after[0], "default": after[1]},
                "celery_workers": truth["workers"],
                "celery_replied_active": truth["replied"]["active"],
                "celery_active": {q: truth["queues"][q]["active"] for q in ("run", "default")},
                "celery_reserved": {q: truth["queues"][q]["reserved"] for q in ("run", "default")}}

        def running_check(expected_running: int):
            # Up to three rounds, every one recorded: a heartbeat can fall in the instant
            # between two of `default`'s 0.5 s tasks and say 0 running for one beat.
            rounds = []
            for _ in range(RUNNING_ROUNDS):
                rounds.append(running_round(expected_running))
                if running_agrees(rounds[-1]):
                    break
            run.running_checks.append({"published_run": expected_running, "rounds": rounds})

        third_published = False
        checks_done = set()
        while time.monotonic() - t0 < PRODUCE_SECONDS + 1.0:
            el = time.monotonic() - t0
            if el >= 9 and "a" not in checks_done:
                checks_done.add("a")
                running_check(2)
            elif el >= 14 and not third_published:
                third_published = True
                stack.publish("run", count=1, duration=RUN_DURATION)
            elif el >= 22 and "b" not in checks_done:
                checks_done.add("b")
                running_check(3)
            else:
                read()
            time.sleep(max(0.0, 0.7 - (time.monotonic() - t0 - el)))

        for q, p in prods.items():
            p.popen.wait(timeout=30)
            run.producers[q] = _read_summary(p)
        for q in list(RATES) + ["default"]:
            run.sends[q] = sorted(json.loads((logdir / f"sent-{q}.json").read_text())["sent"])
        for q, worker in SVC_QUEUES.items():
            log = next(w for w in workers if w.name == f"worker-{worker}").log_text()
            run.svc_runtimes[q] = [float(x) for x in SUCCEEDED.findall(log)]
        assert scaler.proc.alive(), f"scaler died:\n{scaler.proc.tail()}"
        scaler.close()
    except BaseException:
        for proc in pm.procs:
            print(f"\n----- {proc.name} (pid {proc.pid}) last lines of {proc.log} -----\n{proc.tail(30)}")
        raise
    finally:
        pm.stop_all()
        leftovers = [p.name for p in pm.procs if p.alive()]
        assert not leftovers, f"processes still alive after teardown: {leftovers}"
    return run


@pytest.fixture(scope="module", params=["exact", "estimated"])
def live(request, grpc_modules) -> Run:
    return run_scenario(request.param, grpc_modules)


# ------------------------------------------------------------------------------------------
# Ground truth helpers


def sent_rate(sends: list[float], end: float, window: float = WINDOW) -> float:
    """Tasks sent in (end - window, end] per second."""
    return (bisect_right(sends, end) - bisect_right(sends, end - window)) / window


def full_window_readings(run: Run, queue: str) -> list[dict]:
    """Readings whose sample saw a full window of steady production: the window starts after
    the first send and the sample is taken before the last one."""
    sends = run.sends[queue]
    return [r for r in run.readings
            if r["ts"] - WINDOW - TICK >= sends[0] and r["ts"] <= sends[-1]
            and r["view"][queue].get("arrival_rate") is not None]


def within(ours: float, truth: float, tol: float) -> bool:
    return abs(ours - truth) <= tol


# ------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("queue", ["high", "low"])
def test_arrival_rate(live: Run, queue, record):
    """Issue 4: arrival rate within ±10 % (exact) / ±25 % (estimated) of the true producer
    rate over a 30 s window. `high` is drained by a worker that keeps up (~5 ms per task, so
    in estimated mode the sampler sees neither backlog nor `unacked` entries: the start rate
    from the heartbeats of `fast@*`, named by the trigger, is what counts), `low` has none."""
    tol = ARRIVAL_TOLERANCE[live.mode]
    rows = []
    for r in full_window_readings(live, queue):
        truth = sent_rate(live.sends[queue], r["ts"])
        ours = r["view"][queue]["arrival_rate"]
        rows.append({"elapsed": r["elapsed"], "ours": round(ours, 2), "truth": round(truth, 2),
                     "error": round(ours / truth - 1, 4) if truth else None,
                     "mode": r["view"][queue]["modes"].get("arrival_rate"),
                     "dequeue_rate": r["view"][queue].get("dequeue_rate"), "llen": r["llen"][queue]})
    record("producer", live.producers[queue])
    record("readings", rows)
    assert len(rows) >= 3, f"too few full-window readings: {rows}"
    record("summary", {"mode": live.mode, "tolerance": tol,
                       "ours_median": statistics.median(x["ours"] for x in rows),
                       "truth_median": statistics.median(x["truth"] for x in rows),
                       "worst_error": max((x["error"] for x in rows), key=abs)})
    expected_mode = "exact" if live.mode == "exact" else "estimated"
    assert all(x["mode"] == expected_mode for x in rows), rows
    bad = [x for x in rows if not within(x["ours"], x["truth"], tol * x["truth"])]
    assert not bad, f"arrival rate of {queue} outside ±{tol:.0%} of the producer's: {bad}"


def test_queue_wait(live: Run, record):
    """Issue 4: queue wait within max(one tick, 20 %) of the true age of the oldest waiting
    task. `low`: nothing consumes it, so the oldest waiting task is the first one sent.
    `default`: a FIFO drained by `svc`; the oldest waiting task is the (N − LLEN)-th sent."""
    rows = []
    first_low = live.sends["low"][0]
    burst = live.sends["default"]
    for r in live.readings:
        for queue in ("low", "default"):
            ours = r["view"][queue].get("wait")
            llen = r["llen"][queue]
            if queue == "low":
                if r["ts"] < first_low + TICK:
                    continue
                truth = r["ts"] - first_low
            else:
                if llen == 0:
                    continue
                truth = r["ts"] - burst[len(burst) - llen]
            tol = max(TICK, WAIT_RELATIVE * truth)
            rows.append({"queue": queue, "elapsed": r["elapsed"], "ours": ours,
                         "truth": round(truth, 2), "tolerance": round(tol, 2), "llen": llen,
                         "mode": r["view"][queue]["modes"].get("wait")})
    record("readings", rows)
    for queue in ("low", "default"):
        qrows = [x for x in rows if x["queue"] == queue]
        assert len(qrows) >= 10, (queue, qrows)
        record(f"summary_{queue}", {"mode": live.mode, "n": len(qrows),
                                    "worst": max(qrows, key=lambda x: abs((x["ours"] or 0) - x["truth"]))})
    # A queue that just filled may have no estimate for the first tick (the sampler lags Redis
    # by up to one interval; estimated mode reads the list's ends from the tick after it
    # became non-empty). Allowed only while the true age is under two ticks, and recorded.
    fresh = [x for x in rows if x["ours"] is None and x["truth"] < 2 * TICK]
    record("no_estimate_within_two_ticks_of_filling", fresh)
    rows = [x for x in rows if x not in fresh]
    expected_mode = "exact" if live.mode == "exact" else "estimated"
    assert all(x["mode"] == expected_mode for x in rows), [x for x in rows if x["mode"] != expected_mode]
    # The scaler's number describes its latest sample, taken at most one tick before the
    # reading (the sample-age gauge is refreshed per tick, so it cannot date the sample more
    # finely): compare with the true age at some instant of that last tick.
    bad = [x for x in rows if x["ours"] is None
           or not (max(0.0, x["truth"] - TICK) - x["tolerance"] <= x["ours"] <= x["truth"] + x["tolerance"])]
    assert not bad, f"queue wait outside max(one tick, 20 %) of the true age during the last tick: {bad}"


def test_queue_wait_worker_keeping_up(live: Run, record):
    """A queue drained as fast as it fills (`high`, 50 tasks/s, LLEN ~0): the oldest waiting
    task is at most a few ms old, so the scaler must report under one tick, not the window."""
    rows = [{"elapsed": r["elapsed"], "ours": r["view"]["high"].get("wait"), "llen": r["llen"]["high"]}
            for r in live.readings if r["ts"] >= live.sends["high"][0] + TICK]
    record("readings", rows)
    record("max_llen_seen", max(x["llen"] for x in rows))
    assert len(rows) >= 10
    bad = [x for x in rows if x["ours"] is None or x["ours"] > TICK]
    assert not bad, f"wait of a queue whose worker keeps up is over one tick: {bad}"


SERVICE_SOURCES = {
    # `default`: a single-queue trigger names its workers: Little's law over their heartbeats.
    ("exact", "default"): "heartbeat", ("estimated", "default"): "heartbeat",
    # `work`: no trigger names its workers: Little's law over `unacked` (acks_late, prefetch
    # 1), with dequeues counted from keyspace events (exact) or, the list never draining, from
    # where the previous tick's head message is now (estimated: `LPOS`).
    ("exact", "work"): "unacked-occupancy", ("estimated", "work"): "unacked-occupancy",
}


@pytest.mark.parametrize("queue", ["default", "work"])
def test_service_time(live: Run, queue, record):
    """Issue 4: service time within ±25 % of the true mean task duration (tasks sleeping
    0.5 s, -c 2, acks_late, prefetch 1, kept busy for the whole window). Truth: the worker's
    own "succeeded in" runtimes. Compared: what the running server exports (/metrics), whose
    source depends on what the scaler knows (see SERVICE_SOURCES): heartbeats when a
    single-queue trigger names the queue's workers; otherwise Little's law over `unacked`
    with counted dequeues. (The residence of entries seen at ticks, the last resort, aliases
    here: 0.5 s tasks against a 1 s tick keep the same phase for tens of seconds, and it
    read 0.13-0.67 s in one run; it is tested with synthetic series instead.)"""
    runtimes = live.svc_runtimes[queue]
    assert len(runtimes) >= 40, runtimes
    truth = statistics.fmean(runtimes)
    every = [{"elapsed": r["elapsed"], "ours": r["view"][queue].get("service_time"),
              "source": r["view"][queue]["modes"].get("service_time"), "llen": r["llen"][queue]}
             for r in live.readings if r["llen"][queue] > 0]
    # Judged once the burst (which starts as `elapsed` does) fills half the signal window.
    # Both estimators are window averages; before that they rest on a few busy heartbeats or
    # ticks, and Celery's heartbeat `active` is sampled by the worker's own event loop, which
    # under a CPU spike (the paced producers start at elapsed 0) tends to fire between a
    # finished task and its successor: one run read 0.364 s at 8.4 s and was within 25 % from
    # the next reading on. The early readings are recorded, not judged.
    rows = [x for x in every if x["elapsed"] >= WINDOW / 2]
    record("truth", {"sleep": SVC_DURATION, "mean_runtime": round(truth, 4), "tasks": len(runtimes)})
    record("early_readings", [x for x in every if x["elapsed"] < WINDOW / 2])
    record("readings", rows)
    assert len(rows) >= 10, rows
    ours = [x["ours"] for x in rows if x["ours"] is not None]
    record("summary", {"mode": live.mode, "queue": queue,
                       "ours_median": statistics.median(ours) if ours else None,
                       "truth": round(truth, 4), "sources": sorted({str(x["source"]) for x in rows})})
    expected = SERVICE_SOURCES[(live.mode, queue)]
    assert all(x["source"] == expected for x in rows), (expected, rows)
    bad = [x for x in rows if x["ours"] is None or not within(x["ours"], truth, SERVICE_TOLERANCE * truth)]
    assert not bad, f"service time of {queue} outside ±25 % of the true mean {truth:.3f}s: {bad}"
    # The p95 (residence in `unacked`, whatever the mean's source) is never below the true
    # p95 and over-states it by at most one sampling tick (tasks shorter than a tick are seen
    # at a random phase: their residence reads up to S + tick/2).
    truth_p95 = statistics.quantiles(runtimes, n=20)[-1]
    p95s = [r["view"][queue].get("service_time_p95") for r in live.readings if r["llen"][queue] > 0
            and r["elapsed"] >= WINDOW / 2]
    record("p95", {"truth": round(truth_p95, 4), "readings": p95s})
    assert p95s and all(p is not None for p in p95s), p95s
    bad = [p for p in p95s if not 0.9 * truth_p95 <= p <= truth_p95 + TICK + 0.25]
    assert not bad, f"service-time p95 of {queue} outside [{0.9 * truth_p95:.3f}, truth + a tick]: {p95s}"


RUNNING_ROUNDS = 3


def running_agrees(r: dict) -> bool:
    """Whether one round of the running check agrees with Celery, its premises included."""
    # The scenario's premise: `default` still had work when Celery was asked (otherwise the
    # heartbeats, up to 2 s old, legitimately disagree with a just-drained worker) ...
    if r["default_llen_after"] <= 0:
        return False
    # ... and Celery's `inspect active` was answered by the workers of both queues (a reply
    # that did not arrive in time reads as nothing running: no ground truth) ...
    replied = " ".join(r["celery_replied_active"])
    if "svc@" not in replied or "run@" not in replied:
        return False
    truth = r["celery_active"]
    # ... and the ground truth itself is what we set up.
    if truth["run"] != r["published_run"]:
        return False
    for q in ("run", "default"):
        before, after = r["ours_before"][q], r["ours_after"][q]
        if before is None or before != after or abs(after - truth[q]) > 1:
            return False
    return True


def test_running_from_heartbeats(live: Run, record):
    """`running` (heartbeats, triggers with workerHostnames) equals Celery's `inspect active`
    ±1: on `run` under early ack (Redis shows nothing of these tasks once started), and on
    `default` under acks_late."""
    record("checks", live.running_checks)
    assert len(live.running_checks) == 2
    for c in live.running_checks:
        # Some round agrees: ours read twice the same, within ±1 of Celery's answer, while
        # the premises held (the checks are in `running_agrees`). A scaler that reports
        # `running` wrongly fails every round.
        assert 1 <= len(c["rounds"]) <= RUNNING_ROUNDS, c
        assert any(running_agrees(r) for r in c["rounds"]), c
