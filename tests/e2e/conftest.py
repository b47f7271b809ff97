"""Fixtures of the end-to-end suite: real redis-server, real Celery processes, the real scaler."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from harness import (WORK, CeleryLayout, CeleryStack, ProcessManager, Scaler, generate_grpc,
                     scaler_bin)

RESULTS_FILE = WORK.parent / "e2e-results.json"
_results: dict = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_sessionstart(session):
    WORK.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(_results, indent=2, sort_keys=True, default=str))
    # "No tests collected" (exit 5) must never look like success to a caller that only reads
    # the exit code, and a skipped scenario must never hide among passes.
    if exitstatus == 5:
        session.exitstatus = 1
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = 1


@pytest.fixture(scope="session")
def grpc_modules():
    return generate_grpc(WORK / "gen")


@pytest.fixture(scope="session", autouse=True)
def _scaler_binary_present():
    path = scaler_bin()
    if not path.exists():
        pytest.fail(f"scaler binary missing at {path} (set CELERY_SCALER_BIN or run tests/e2e/run.sh)")


@pytest.fixture
def pm(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    logdir = WORK / "logs" / name
    if logdir.exists():
        for p in sorted(logdir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    manager = ProcessManager(logdir)
    yield manager
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        for proc in manager.procs:
            print(f"\n----- {proc.name} (pid {proc.pid}) last lines of {proc.log} -----\n{proc.tail(30)}")
    manager.stop_all()
    leftovers = [p.name for p in manager.procs if p.alive()]
    assert not leftovers, f"processes still alive after teardown: {leftovers}"


@pytest.fixture
def make_stack(pm):
    def make(**layout) -> CeleryStack:
        return CeleryStack(pm, CeleryLayout(**layout))
    return make


@pytest.fixture
def scaler(pm, grpc_modules):
    pb2, pb2_grpc = grpc_modules
    s = Scaler(pm, pb2, pb2_grpc)
    yield s
    s.close()
    assert s.proc.alive(), f"scaler died during the test:\n{s.proc.tail()}"


@pytest.fixture
def record(request):
    """record(key, value): observed numbers, printed and saved to .work/e2e-results.json."""
    entry = _results.setdefault(request.node.name, {"observations": {}})
    started = time.monotonic()

    def rec(key, value):
        entry["observations"][key] = value
        print(f"[{request.node.name}] {key}: {json.dumps(value, default=str, sort_keys=True)}")
    yield rec
    entry["seconds"] = round(time.monotonic() - started, 1)
    rep = getattr(request.node, "rep_call", None)
    entry["outcome"] = rep.outcome if rep else "error"
