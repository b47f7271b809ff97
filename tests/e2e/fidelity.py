"""The fidelity harness: replays one trace against real Celery workers and against
`celery-scaler simulate`, and compares the waits and the shutdown counts.

A case fixes the fleet (N workers of `-c c`, no autoscaling), the Celery settings, an
optional SIGTERM of one worker at `stop_at` with a grace period, and a seeded trace of
(offset, duration, priority). The real run records send times in the producer and start/end
times in the task; the simulation then replays the *actual* send offsets (so producer jitter
is not counted as a model error) and the measured run times (end − start: the host's
sleep overshoot under load is not one either) with `min = max = N`, no start-up delay and
`workers.stops` at the actual SIGTERM offset.
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import E2E_DIR, APP_DIR, CeleryLayout, CeleryStack, ProcessManager, PY, scaler_bin, \
    scaler_env, wait_until

PYTHONPATH = f"{APP_DIR}:{E2E_DIR}"


@dataclass
class Case:
    name: str
    workers: int
    concurrency: int
    prefetch: int
    acks_late: bool
    trace: list  # [(offset, duration, priority)]
    stop_at: float | None = None  # SIGTERM of one worker, seconds after the first send
    grace: float = 30.0
    visibility_timeout: int = 3600
    notes: str = ""


@dataclass
class Result:
    waits: list[float]
    restored: int
    lost: int
    redelivered: int
    unstarted: int
    extra: dict = field(default_factory=dict)

    def stats(self) -> dict:
        return {"p50": percentile(self.waits, 0.50), "p95": percentile(self.waits, 0.95),
                "max": max(self.waits, default=0.0)}


def percentile(values: list[float], p: float) -> float:
    """Nearest rank, as the simulator's report computes it."""
    if not values:
        return 0.0
    s = sorted(values)
    rank = min(max(int(-(-p * len(s) // 1)), 1), len(s))
    return s[rank - 1]


def close(a: float, b: float) -> bool:
    """The target: within 10 % or 0.5 s of each other."""
    return abs(a - b) <= max(0.5, 0.10 * max(abs(a), abs(b)))


# ------------------------------------------------------------------------------------------
# Traces


def poisson_trace(seed: int, rate: float, seconds: float, durations: list[float],
                  priorities: list[int] = (0,), start: float = 0.0) -> list:
    rnd = random.Random(seed)
    out, t = [], start
    while True:
        t += rnd.expovariate(rate)
        if t >= start + seconds:
            return out
        out.append((round(t, 3), rnd.choice(durations), rnd.choice(list(priorities))))


def burst_trace(count: int, over: float, duration: float, priority: int = 0, at: float = 0.0) -> list:
    return [(round(at + over * i / count, 3), duration, priority) for i in range(count)]


def cases(full: bool) -> list[Case]:
    """The short set (CI) or the full set (FIDELITY_FULL=1, the table in docs/simulate.md)."""
    k = 3 if full else 1
    mix = [0.5, 0.7, 1.0, 1.5, 2.5]
    prio = (burst_trace(12 * k, 1.0, 1.0, priority=9)
            + poisson_trace(7, 1.2, 6.0 * k, [0.5, 0.8], priorities=(0,), start=1.5))
    out = [
        Case("prefetch1-acks-late", 2, 2, 1, True, poisson_trace(1, 3.4, 9.0 * k, mix),
             notes="Poisson at ≈ 100 % load, mixed 0.5–2.5 s tasks"),
        Case("prefetch4-early-ack", 2, 2, 4, False, poisson_trace(2, 3.4, 9.0 * k, mix),
             notes="same load, Celery's default prefetch"),
        Case("warm-shutdown-early-ack", 2, 2, 4, False, burst_trace(20, 0.95, 1.5),
             stop_at=2.0, grace=0.5,
             notes="both workers full (2 running + 8 reserved); SIGTERM one at 2 s, grace 0.5 s"),
        Case("priorities-two-steps", 2, 2, 1, True, sorted(prio),
             notes="a backlog of priority-9 tasks, then priority-0 arrivals overtake it"),
    ]
    if full:
        out.append(Case("warm-shutdown-acks-late", 2, 2, 1, True,
                        burst_trace(12, 0.55, 1.5) + burst_trace(6, 0.3, 4.0, at=0.6),
                        stop_at=2.0, grace=0.5, visibility_timeout=15,
                        notes="acks_late, grace < longest task: interrupted tasks re-run after "
                              "the visibility timeout"))
    return out


# ------------------------------------------------------------------------------------------
# The real run


def run_real(pm: ProcessManager, case: Case, workdir: Path) -> tuple[Result, float | None, float, list]:
    """Runs `case` on real workers; returns the result, the actual SIGTERM offset, the
    observation window (seconds from t0) and the actual send offsets (with durations and
    priorities) for the simulator."""
    stack = CeleryStack(pm, CeleryLayout(prefetch_multiplier=case.prefetch, acks_late=case.acks_late,
                                         visibility_timeout=case.visibility_timeout))
    workers = [stack.start_worker(f"f{j}", "default", concurrency=case.concurrency, wait=False,
                                  app="fidelity_tasks", PYTHONPATH=PYTHONPATH)
               for j in range(case.workers)]
    stack.wait_ready(workers)
    time.sleep(1.0)  # every worker is blocked in BRPOP
    trace_file, sent_file = workdir / f"{case.name}-trace.json", workdir / f"{case.name}-sent.json"
    trace_file.write_text(json.dumps(case.trace))
    t0 = time.time() + 1.0
    producer = pm.start(f"producer-{case.name}",
                        [PY, str(E2E_DIR / "fidelity_producer.py"), str(trace_file), str(t0), str(sent_file)],
                        env=stack.env(PYTHONPATH=PYTHONPATH), cwd=APP_DIR)
    stop_offset = None
    if case.stop_at is not None:
        victim = workers[-1]
        time.sleep(max(0.0, t0 + case.stop_at - time.time()))
        stop_offset = time.time() - t0
        victim.popen.send_signal(signal.SIGTERM)  # the main process only, as the kubelet does
        try:
            victim.popen.wait(timeout=case.grace)
        except subprocess.TimeoutExpired:
            victim.signal_group(signal.SIGKILL)  # end of the grace period: the whole container
            victim.popen.wait(timeout=10)
    wait_until(lambda: producer.popen.poll(), lambda rc: rc is not None, 120, 0.1, "producer")
    assert producer.popen.returncode == 0, producer.tail()
    sent = json.loads(sent_file.read_text())
    n = len(case.trace)

    quiet = {"n": -1, "since": time.monotonic()}

    def settled():
        ev = [json.loads(x) for x in stack.r.lrange("fidelity:events", 0, -1)]
        if len(ev) != quiet["n"]:
            quiet.update(n=len(ev), since=time.monotonic())
        starts = {e["i"] for e in ev if e["ev"] == "start"}
        ends = {e["i"] for e in ev if e["ev"] == "end"}
        dead = {w.name.removeprefix("worker-") + "@e2e" for w in workers if not w.alive()}
        stuck = {e["i"] for e in ev if e["ev"] == "start" and e["w"] in dead} - ends
        busy = len(starts - ends - stuck)
        done = ends if rerun else ends | stuck
        idle = busy == 0 and stack.llen("default") == 0
        # Messages a SIGKILL stranded in `unacked` never start (visibility timeout > run):
        # without a re-run to await, 3 quiet seconds with nothing queued or running end it.
        stranded = not rerun and time.monotonic() - quiet["since"] > 3.0
        return ev, idle and (len(done) == n or stranded)
    # acks_late with a short visibility timeout: interrupted tasks are re-run; await them.
    rerun = case.acks_late and case.visibility_timeout <= 600
    horizon = sum(d for _, d, _ in case.trace) / (case.workers * case.concurrency) + 60
    events, _ = wait_until(settled, lambda v: v[1],
                           horizon + (2 * case.visibility_timeout if rerun else 0),
                           0.25, f"{case.name}: every task ended or lost")
    window = time.time() - t0  # the observation window; the simulation covers the same
    ran = measured_run_times(events)
    (workdir / f"{case.name}-real.json").write_text(json.dumps({"t0": t0, "sent": sent, "events": events}))
    return summarise(events, sent, n, t0 + window), stop_offset, window, [
        (round(sent[i] - t0, 4), round(ran.get(i, d), 4), p) for i, (_, d, p) in enumerate(case.trace)]


def measured_run_times(events: list[dict]) -> dict[int, float]:
    """End − start of each task's first run that ended (paired with the start on the same
    worker, so a run a SIGKILL cut short is skipped): what `sleep(d)` took on this host (d
    plus the sleep's overshoot under load), replayed as the task's duration."""
    begun: dict[tuple[int, str], float] = {}
    out: dict[int, float] = {}
    for e in sorted(events, key=lambda e: e["t"]):
        key = (e["i"], e["w"])
        if e["ev"] == "start":
            begun[key] = e["t"]
        elif key in begun and e["i"] not in out:
            out[e["i"]] = e["t"] - begun[key]
    return out


def summarise(events: list[dict], sent: list[float], n: int, end: float) -> Result:
    """Waits of started tasks, plus the censored wait (end − send) of tasks never started,
    as the simulator counts them."""
    starts: dict[int, list[dict]] = {}
    ends: set[int] = set()
    for e in sorted(events, key=lambda e: e["t"]):
        if e["ev"] == "start":
            starts.setdefault(e["i"], []).append(e)
        else:
            ends.add(e["i"])
    waits = [max(0.0, s[0]["t"] - sent[i]) for i, s in starts.items()]
    waits += [max(0.0, end - sent[i]) for i in range(n) if i not in starts]
    return Result(
        waits=waits,
        restored=sum(1 for s in starts.values() if s[0]["redelivered"]),
        lost=sum(1 for i in starts if i not in ends),
        redelivered=sum(1 for s in starts.values() if len(s) > 1),
        unstarted=n - len(starts),
    )


# ------------------------------------------------------------------------------------------
# The simulation of the same trace


def scenario_toml(case: Case, trace_csv: Path, stop_offset: float | None, last: float,
                  window: float) -> str:
    stops = f"[{stop_offset:.4f}]" if stop_offset is not None else "[]"
    duration = last + 0.001
    return f'''name = "fidelity-{case.name}"
duration = {duration:.3f}
drain = {max(0.0, window - duration):.3f}
target_latency = 10
[keda]
min_replicas = {case.workers}
max_replicas = {case.workers}
[workers]
concurrency = {case.concurrency}
prefetch_multiplier = {case.prefetch}
acks_late = {"true" if case.acks_late else "false"}
termination_grace = {case.grace}
visibility_timeout = {case.visibility_timeout}
startup = {{ kind = "constant", value = 0 }}
stops = {stops}
[policies]
keda_redis_list_lengths = [1]
[[queues]]
name = "default"
duration = {{ kind = "constant", value = 1 }}
priorities = [[0, 1.0], [3, 0.0], [6, 0.0], [9, 0.0]]
arrivals = [{{ kind = "trace", path = "{trace_csv.name}" }}]
'''


def run_sim(case: Case, replay: list, stop_offset: float | None, window: float,
            workdir: Path) -> dict:
    csv = workdir / f"{case.name}-replay.csv"
    csv.write_text("timestamp,duration,priority\n"
                   + "".join(f"{t},{d},{p}\n" for t, d, p in replay))
    toml = workdir / f"{case.name}.toml"
    toml.write_text(scenario_toml(case, csv, stop_offset, max(t for t, _, _ in replay), window))
    cp = subprocess.run([str(scaler_bin()), "simulate", "--scenario", str(toml), "--json"],
                        capture_output=True, text=True, timeout=120, env=scaler_env())
    if cp.returncode != 0:
        raise AssertionError(f"simulate failed ({cp.returncode}): {cp.stderr[-2000:]}")
    rows = json.loads(cp.stdout)["policies"]
    # The replica count is fixed, so every policy runs the same fleet: one row is the model.
    return rows[0]


def compare(case: Case, real: Result, sim: dict) -> dict:
    r = real.stats()
    s = {"p50": sim["wait_p50"], "p95": sim["wait_p95"], "max": sim["wait_max"]}
    sim_redelivered = sim["interrupted"] - sim["lost"]
    counts_real = {"restored": real.restored, "lost": real.lost, "redelivered": real.redelivered,
                   "unstarted": real.unstarted}
    counts_sim = {"restored": sim["restored_at_shutdown"], "lost": sim["lost"],
                  "redelivered": sim_redelivered, "unstarted": sim["unfinished"]}
    ok = close(r["p50"], s["p50"]) and close(r["p95"], s["p95"]) and counts_real == counts_sim
    return {"case": case.name, "tasks": len(case.trace), "sim": s, "real": r,
            "counts_sim": counts_sim, "counts_real": counts_real, "ok": ok}


def table(rows: list[dict]) -> str:
    head = ("| case | tasks | sim p50 / p95 / max (s) | real p50 / p95 / max (s) | restored sim/real "
            "| lost sim/real | redelivered sim/real | never started sim/real | verdict |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for row in rows:
        s, r, cs, cr = row["sim"], row["real"], row["counts_sim"], row["counts_real"]
        body += (f"| {row['case']} | {row['tasks']} | {s['p50']:.2f} / {s['p95']:.2f} / {s['max']:.2f} "
                 f"| {r['p50']:.2f} / {r['p95']:.2f} / {r['max']:.2f} "
                 f"| {cs['restored']}/{cr['restored']} | {cs['lost']}/{cr['lost']} "
                 f"| {cs['redelivered']}/{cr['redelivered']} | {cs['unstarted']}/{cr['unstarted']} "
                 f"| {'ok' if row['ok'] else 'MISMATCH'} |\n")
    return head + body
