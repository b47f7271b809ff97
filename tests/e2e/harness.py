"""Process, Redis, Celery and scaler helpers for the end-to-end suite.

Everything here starts real programs as child processes in their own process group and
stops them by PID (the group id), never by name.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "deploy" / "app"
E2E_DIR = Path(__file__).resolve().parent
WORK = REPO / ".work" / "e2e"
PY = sys.executable
DEFAULT_SEP = "\x06\x16"


class HarnessError(RuntimeError):
    pass


def free_port() -> int:
    """A free loopback TCP port (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def wait_until(fn: Callable[[], object], pred: Callable[[object], bool], timeout: float,
               interval: float = 0.25, what: str = "condition"):
    """Call fn until pred(value) holds; return the value. Raise with the last value on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if pred(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------
# Child processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)  # start_new_session=True: pgid == pid
        except ProcessLookupError:
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 8.0) -> int | None:
        """Signal the process group, wait, then SIGKILL the group if still there."""
        if self.alive():
            self.signal_group(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Pool children or grandchildren may outlive the leader: kill what is left of the group.
        self.signal_group(signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class ProcessManager:
    """Starts children in their own session and stops every one of them at teardown."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Proc:
        log = self.logdir / f"{name}.log"
        fh = open(log, "ab")
        try:
            popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(cwd) if cwd else None, start_new_session=True)
        finally:
            fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            # Celery workers: SIGQUIT = cold shutdown (does not wait for running tasks).
            proc.stop(signal.SIGQUIT if proc.name.startswith("worker") else signal.SIGTERM, timeout=6)


# ------------------------------------------------------------------------------------------
# Redis


class RedisServer:
    def __init__(self, pm: ProcessManager, name: str = "redis", extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.dir = pm.logdir / f"{name}-data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = pm.start(name, ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                                    "--daemonize", "no", *extra_args])
        import redis
        self._redis = redis
        wait_until(self._ping, bool, 10, 0.05, f"redis-server on port {self.port}")

    def _ping(self) -> bool:
        if not self.proc.alive():
            raise HarnessError(f"redis-server exited: {self.proc.tail()}")
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001
            return False

    def client(self, db: int = 0):
        return self._redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)


# ------------------------------------------------------------------------------------------
# Celery stack (one broker layout per test)


@dataclass
class CeleryLayout:
    db: int = 0
    prefix: str = ""
    steps: tuple[int, ...] = (0, 3, 6, 9)
    sep: str = DEFAULT_SEP
    visibility_timeout: int = 3600
    prefetch_multiplier: int = 1
    acks_late: bool = True
    results: bool = False
    extra_env: dict = field(default_factory=dict)
    # Extra redis-server arguments, e.g. ("--notify-keyspace-events", "Kl").
    redis_args: tuple[str, ...] = ()

    def keys(self, queue: str) -> list[bytes]:
        """Every Redis list key of a queue: base key + one per non-zero priority step."""
        base = (self.prefix + queue).encode()
        return [base] + [base + self.sep.encode() + str(s).encode() for s in self.steps if s != 0]

    def key_for_priority(self, queue: str, priority: int | None) -> bytes:
        p = max(0, min(9, priority or 0))
        step = max(s for s in self.steps if s <= p)
        base = (self.prefix + queue).encode()
        return base if step == 0 else base + self.sep.encode() + str(step).encode()


def escape_sep(sep: str) -> str:
    """The separator in the escaped text form used by trigger metadata (\\x06\\x16)."""
    return "".join(c if 0x20 < ord(c) < 0x7F and c != "\\" else f"\\x{ord(c):02x}" for c in sep)


class CeleryStack:
    """A private Redis plus helpers to run the sample app's processes against it."""

    def __init__(self, pm: ProcessManager, layout: CeleryLayout):
        self.pm = pm
        self.layout = layout
        self.redis = RedisServer(pm, extra_args=tuple(layout.redis_args))
        self.r = self.redis.client(layout.db)
        self.workers: list[Proc] = []

    # environment -------------------------------------------------------------------------
    def env(self, **overrides) -> dict:
        lay = self.layout
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        env.update({
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis.port}/{lay.db}",
            "CELERY_WORKER_PREFETCH_MULTIPLIER": str(lay.prefetch_multiplier),
            "CELERY_TASK_ACKS_LATE": "true" if lay.acks_late else "false",
            "CELERY_VISIBILITY_TIMEOUT": str(lay.visibility_timeout),
            "CELERY_PRIORITY_STEPS": ",".join(str(s) for s in lay.steps),
            "CELERY_PRIORITY_SEP": escape_sep(lay.sep),
            "CELERY_GLOBAL_KEYPREFIX": lay.prefix,
            "CELERY_BEAT_SCHEDULE_FILE": str(self.pm.logdir / "celerybeat-schedule"),
            "PYTHONPATH": str(APP_DIR),
            "PYTHONUNBUFFERED": "1",
        })
        if lay.results:
            env["CELERY_RESULT_BACKEND"] = f"redis://127.0.0.1:{self.redis.port}/{(lay.db + 1) % 16}"
        env.update(lay.extra_env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def celery_argv(self, *args: str, app: str = "app.celery_app") -> list[str]:
        return [PY, "-m", "celery", "-A", app, *args]

    # processes -----------------------------------------------------------------------------
    def start_worker(self, name: str, queues: str, concurrency: int = 1, wait: bool = True,
                     extra_args: tuple[str, ...] = (), app: str = "app.celery_app", **env) -> Proc:
        argv = self.celery_argv("worker", "-Q", queues, "-c", str(concurrency), "-n", f"{name}@e2e",
                                "--loglevel=INFO", "--without-mingle", "--without-gossip", *extra_args, app=app)
        proc = self.pm.start(f"worker-{name}", argv, env=self.env(**env), cwd=APP_DIR)
        self.workers.append(proc)
        if wait:
            wait_until(lambda: self._ready(proc), bool, 60, 0.2, f"worker {name} ready")
        return proc

    def wait_ready(self, procs: list[Proc], timeout: float = 90) -> None:
        """Waits until every worker of `procs` (started with wait=False) logged "ready"."""
        wait_until(lambda: all(self._ready(p) for p in procs), bool, timeout, 0.2, "workers ready")

    @staticmethod
    def _ready(proc: Proc) -> bool:
        if not proc.alive():
            raise HarnessError(f"{proc.name} exited early:\n{proc.tail()}")
        return " ready." in proc.log_text()

    def start_beat(self, **env) -> Proc:
        argv = self.celery_argv("beat", "--loglevel=INFO")
        return self.pm.start("beat", argv, env=self.env(**env), cwd=APP_DIR)

    def start_web(self) -> tuple[Proc, str]:
        port = free_port()
        argv = [PY, "-m", "uvicorn", "app.web:app", "--host", "127.0.0.1", "--port", str(port)]
        proc = self.pm.start("web", argv, env=self.env(), cwd=APP_DIR)
        url = f"http://127.0.0.1:{port}"
        import httpx

        def up():
            if not proc.alive():
                raise HarnessError(f"web exited:\n{proc.tail()}")
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(up, bool, 30, 0.2, "web /healthz")
        return proc, url

    # Celery-side probes ------------------------------------------------------------------
    def probe(self, *args: str, timeout: float = 60) -> dict:
        cp = subprocess.run([PY, str(E2E_DIR / "probe.py"), *args], env=self.env(), cwd=APP_DIR,
                            capture_output=True, text=True, timeout=timeout)
        if cp.returncode != 0:
            raise HarnessError(f"probe {args} failed ({cp.returncode}):\n{cp.stderr[-3000:]}")
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def publish(self, queue: str, count: int = 1, priorities: list[int] | None = None,
                countdown: float | None = None, duration: float = 0.0, **kw) -> dict:
        args = ["publish", "--queue", queue, "--count", str(count), "--duration", str(duration)]
        if priorities is not None:
            args += ["--priorities", ",".join(str(p) for p in priorities)]
        if countdown is not None:
            args += ["--countdown", str(countdown)]
        if kw.get("fail"):
            args.append("--fail")
        if kw.get("retry_times"):
            args += ["--retry-times", str(kw["retry_times"]), "--retry-delay", str(kw.get("retry_delay", 1.0))]
        return self.probe(*args)

    def celery_truth(self, queues: list[str], workers: int = 0, timeout: float = 2.0,
                     attempts: int = 3) -> dict:
        """Celery's own view: inspect active/reserved/scheduled per queue + kombu queue sizes.
        With `workers`, asks again (up to `attempts` times) until that many workers answered
        each of the three requests, and raises if they never did: on a loaded machine a reply
        can miss the timeout, and a missing reply would read as nothing active."""
        tries = []
        for _ in range(max(1, attempts)):
            truth = self.probe("truth", "--queues", ",".join(queues), "--workers", str(workers),
                               "--timeout", str(timeout))
            tries.append(truth["replied"])
            if all(len(r) >= workers for r in truth["replied"].values()):
                return truth
        if attempts == 1:
            return truth  # the caller checks who answered
        raise HarnessError(f"not every one of {workers} worker(s) answered inspect: {tries}")

    def kombu_sizes(self, queues: list[str]) -> dict:
        return self.probe("sizes", "--queues", ",".join(queues))["kombu_size"]

    # raw Redis -----------------------------------------------------------------------------
    def llen(self, queue: str) -> int:
        pipe = self.r.pipeline(transaction=False)
        for k in self.layout.keys(queue):
            pipe.llen(k)
        return int(sum(pipe.execute()))

    def llen_per_key(self, queue: str) -> dict:
        return {k.decode("latin-1"): int(self.r.llen(k)) for k in self.layout.keys(queue)}

    def hlen_unacked(self) -> int:
        return int(self.r.hlen(self.layout.prefix + "unacked"))

    def unacked_entries(self) -> list[dict]:
        """Decoded `unacked` entries: queue (routing key), eta, age in seconds."""
        p = self.layout.prefix
        raw = self.r.hgetall(p + "unacked")
        scores = dict(self.r.zrange(p + "unacked_index", 0, -1, withscores=True))
        now = time.time()
        out = []
        for tag, value in raw.items():
            msg, exchange, routing_key = json.loads(value)
            score = scores.get(tag)
            out.append({"tag": tag.decode(), "exchange": exchange, "routing_key": routing_key,
                        "eta": msg["headers"].get("eta"),
                        "age": None if score is None else round(now - score, 3)})
        return out

    def raw_view(self, queues: list[str]) -> dict:
        return {"llen": {q: self.llen(q) for q in queues}, "hlen_unacked": self.hlen_unacked()}

    # scaler metadata -----------------------------------------------------------------------
    def metadata(self, queues: list[str], **extra) -> dict:
        lay = self.layout
        meta = {"address": f"127.0.0.1:{self.redis.port}", "queues": ",".join(queues)}
        if lay.db:
            meta["databaseIndex"] = str(lay.db)
        if lay.prefix:
            meta["keyPrefix"] = lay.prefix
        if tuple(lay.steps) != (0, 3, 6, 9):
            meta["prioritySteps"] = ",".join(str(s) for s in lay.steps)
        if lay.sep != DEFAULT_SEP:
            meta["prioritySeparator"] = escape_sep(lay.sep)
        if lay.visibility_timeout != 3600:
            meta["visibilityTimeout"] = str(lay.visibility_timeout)
        meta.update({k: str(v) for k, v in extra.items()})
        return meta


# ------------------------------------------------------------------------------------------
# The scaler


def scaler_env() -> dict:
    """Environment for scaler processes. The scaler reads every CELERY_SCALER_* variable as a
    setting and rejects unknown ones, so our own CELERY_SCALER_BIN must not reach it."""
    env = {k: v for k, v in os.environ.items() if k != "CELERY_SCALER_BIN"}
    env.setdefault("RUST_LOG", "info")
    return env


def scaler_bin() -> Path:
    path = Path(os.environ.get("CELERY_SCALER_BIN", "target/release/celery-scaler"))
    return path if path.is_absolute() else REPO / path


class Scaler:
    """`celery-scaler serve` on free loopback ports plus a gRPC client."""

    def __init__(self, pm: ProcessManager, pb2, pb2_grpc):
        import grpc
        self.grpc = grpc
        self.pb2 = pb2
        self.bin = scaler_bin()
        if not self.bin.exists():
            raise HarnessError(f"scaler binary not found at {self.bin}")
        self.grpc_port = free_port()
        self.admin_port = free_port()
        env = scaler_env()
        self.proc = pm.start("scaler", [str(self.bin), "serve",
                                        "--grpc-listen", f"127.0.0.1:{self.grpc_port}",
                                        "--admin-listen", f"127.0.0.1:{self.admin_port}"], env=env)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        ready = grpc.channel_ready_future(self.channel)
        deadline = time.monotonic() + 20
        while True:
            try:
                ready.result(timeout=0.2)
                break
            except grpc.FutureTimeoutError:
                if not self.proc.alive() or time.monotonic() > deadline:
                    ready.cancel()
                    raise HarnessError(f"scaler gRPC not ready on {self.grpc_port} "
                                       f"(exit {self.proc.popen.poll()}):\n{self.proc.tail()}") from None
        self.stub = pb2_grpc.ExternalScalerStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def ref(self, meta: dict, name: str = "worker"):
        return self.pb2.ScaledObjectRef(name=name, namespace="e2e", scalerMetadata=meta)

    def is_active(self, meta: dict) -> bool:
        return self.stub.IsActive(self.ref(meta), timeout=10).result

    def metric_spec(self, meta: dict):
        specs = self.stub.GetMetricSpec(self.ref(meta), timeout=10).metricSpecs
        assert len(specs) == 1, specs
        return specs[0]

    def metric(self, meta: dict) -> float:
        name = self.metric_spec(meta).metricName
        resp = self.stub.GetMetrics(self.pb2.GetMetricsRequest(scaledObjectRef=self.ref(meta),
                                                               metricName=name), timeout=10)
        assert len(resp.metricValues) == 1, resp
        mv = resp.metricValues[0]
        assert mv.metricValue == round(mv.metricValueFloat), mv  # both fields filled
        return mv.metricValueFloat

    def view(self, meta: dict) -> dict:
        """What KEDA would get now: IsActive and GetMetrics."""
        return {"active": self.is_active(meta), "metric": self.metric(meta)}

    def admin_metrics(self) -> str:
        import httpx
        return httpx.get(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5).text


def run_inspect(meta: dict) -> dict:
    """`celery-scaler inspect --metadata k=v ... --json` -> parsed JSON (plus per-queue map)."""
    argv = [str(scaler_bin()), "inspect", "--json"]
    for k, v in meta.items():
        argv += ["--metadata", f"{k}={v}"]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=scaler_env())
    if cp.returncode != 0:
        raise HarnessError(f"inspect failed ({cp.returncode}): {cp.stderr.strip()}")
    data = json.loads(cp.stdout)
    data["by_queue"] = {q["name"]: q for q in data["queues"]}
    return data


def generate_grpc(out_dir: Path):
    """Generate the Python client for proto/externalscaler.proto into out_dir; import it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proto = REPO / "proto" / "externalscaler.proto"
    from grpc_tools import protoc
    rc = protoc.main(["protoc", f"-I{proto.parent}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(proto)])
    if rc != 0:
        raise HarnessError(f"grpc_tools.protoc failed with {rc}")
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    import externalscaler_pb2
    import externalscaler_pb2_grpc
    return externalscaler_pb2, externalscaler_pb2_grpc
