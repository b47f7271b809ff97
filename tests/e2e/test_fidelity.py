"""Fidelity of `celery-scaler simulate` against real Celery (issue 10, part 2).

Each case replays a seeded trace of `sleep(d)` tasks on a fixed fleet of real workers (own
redis-server), then simulates the same trace (the actual send offsets) with min = max = N,
and compares p50/p95 wait (within 10 % or 0.5 s) and the counts of tasks restored at warm
shutdown, lost, re-delivered and never started (equal). The short set runs in CI;
FIDELITY_FULL=1 runs the longer set; both write the comparison table (markdown) into the
`fidelity` directory of the suite's work area.
"""
from __future__ import annotations

import os

import pytest

import fidelity
from harness import WORK

FULL = os.environ.get("FIDELITY_FULL") == "1"
CASES = {c.name: c for c in fidelity.cases(FULL)}
_rows: dict[str, dict] = {}


@pytest.mark.parametrize("name", list(CASES))
def test_fidelity(name, pm, record):
    case = CASES[name]
    workdir = WORK / "fidelity"
    workdir.mkdir(parents=True, exist_ok=True)
    real, stop_offset, window, replay = fidelity.run_real(pm, case, workdir)
    sim = fidelity.run_sim(case, replay, stop_offset, window, workdir)
    row = fidelity.compare(case, real, sim)
    row["load"] = os.getloadavg()
    _rows[name] = row
    record("fidelity", row)
    (workdir / "table.txt").write_text(
        fidelity.table([_rows[n] for n in CASES if n in _rows])
        + f"\nload average at the end: {os.getloadavg()}\n")
    if case.stop_at is None:
        assert real.unstarted == 0, f"{real.unstarted} tasks never started"
    else:
        # The case is only meaningful when the shutdown did restore and interrupt something.
        assert row["counts_real"]["restored"] + row["counts_real"]["lost"] \
            + row["counts_real"]["redelivered"] > 0, row
    assert row["ok"], fidelity.table([row])
