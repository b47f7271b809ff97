"""Settings read from the environment.

Every process of the stack (web, worker, beat, flower) imports the same Celery app, so the
producers and the workers always agree on the broker layout (key prefix, priority steps and
separator). The scaler must be given the same values in its trigger metadata.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_PRIORITY_STEPS = (0, 3, 6, 9)
DEFAULT_PRIORITY_SEP = "\x06\x16"

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """An environment variable has a value we cannot use."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ConfigError(f"{name}: expected true/false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {value}")
    return value


def parse_priority_steps(raw: str) -> tuple[int, ...]:
    """`"0,3,6,9"` -> (0, 3, 6, 9). Steps must be distinct integers in 0..9, ascending, starting at 0."""
    try:
        steps = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"CELERY_PRIORITY_STEPS: expected comma-separated integers, got {raw!r}") from None
    if not steps or steps[0] != 0:
        raise ConfigError(f"CELERY_PRIORITY_STEPS: must start with 0, got {raw!r}")
    if list(steps) != sorted(set(steps)) or steps[-1] > 9:
        raise ConfigError(f"CELERY_PRIORITY_STEPS: must be ascending, distinct, within 0..9, got {raw!r}")
    return steps


def parse_priority_sep(raw: str) -> str:
    r"""The separator as text. Backslash escapes are decoded, so the default can be written
    `\x06\x16` in a manifest (the same escaped form the scaler's `prioritySeparator` accepts)."""
    if "\\" in raw:
        try:
            raw = raw.encode("latin-1").decode("unicode_escape")
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise ConfigError(f"CELERY_PRIORITY_SEP: bad escape sequence in {raw!r}") from None
    if not raw:
        raise ConfigError("CELERY_PRIORITY_SEP: must not be empty")
    return raw


@dataclass(frozen=True)
class Settings:
    broker_url: str
    result_backend: str | None = None
    worker_concurrency: int | None = None
    prefetch_multiplier: int = 1
    acks_late: bool = True
    visibility_timeout: int = 3600
    priority_steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    priority_sep: str = DEFAULT_PRIORITY_SEP
    global_keyprefix: str = ""
    send_task_events: bool = False
    beat_interval: float = 60.0
    beat_schedule_file: str = field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "celerybeat-schedule"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        broker = env.get("CELERY_BROKER_URL", "").strip()
        if not broker:
            raise ConfigError("CELERY_BROKER_URL is required (e.g. redis://redis:6379/0)")
        return cls(
            broker_url=broker,
            result_backend=env.get("CELERY_RESULT_BACKEND", "").strip() or None,
            worker_concurrency=_int(env, "CELERY_WORKER_CONCURRENCY", None, minimum=1),
            prefetch_multiplier=_int(env, "CELERY_WORKER_PREFETCH_MULTIPLIER", 1, minimum=0),
            acks_late=_bool(env, "CELERY_TASK_ACKS_LATE", True),
            visibility_timeout=_int(env, "CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1),
            priority_steps=parse_priority_steps(env.get("CELERY_PRIORITY_STEPS", "") or "0,3,6,9"),
            priority_sep=parse_priority_sep(env.get("CELERY_PRIORITY_SEP", "") or DEFAULT_PRIORITY_SEP),
            global_keyprefix=env.get("CELERY_GLOBAL_KEYPREFIX", ""),
            send_task_events=_bool(env, "CELERY_WORKER_SEND_TASK_EVENTS", False),
            beat_interval=_float(env, "CELERY_BEAT_INTERVAL", 60.0, minimum=0.1),
            beat_schedule_file=env.get("CELERY_BEAT_SCHEDULE_FILE", "").strip()
            or os.path.join(tempfile.gettempdir(), "celerybeat-schedule"),
        )

    def broker_transport_options(self) -> dict:
        options: dict = {
            "visibility_timeout": self.visibility_timeout,
            "priority_steps": list(self.priority_steps),
            "sep": self.priority_sep,
        }
        if self.global_keyprefix:
            options["global_keyprefix"] = self.global_keyprefix
        return options
