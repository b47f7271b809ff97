"""The Celery application: `celery -A app.celery_app worker|beat|flower`.

Configuration comes from the environment (see config.py and ../README.md).
"""
from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from .config import Settings

QUEUES = ("high", "default", "low")

settings = Settings.from_env()

app = Celery("app", broker=settings.broker_url, backend=settings.result_backend,
             include=["app.tasks"])

app.conf.update(
    # Three direct queues. A queue's Redis list key is its name (plus priority sub-keys
    # `<name><sep><step>`), all under the optional global key prefix.
    task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    task_routes={
        "app.tasks.urgent": {"queue": "high"},
        "app.tasks.process": {"queue": "default"},
        "app.tasks.batch": {"queue": "low"},
        "app.tasks.periodic_report": {"queue": "low"},
    },
    broker_transport_options=settings.broker_transport_options(),
    broker_connection_retry_on_startup=True,
    # Production defaults recommended with celery-scaler: one reservation per process and
    # late acknowledgement, so every task that is waiting or running is visible in Redis
    # (list or `unacked`) and a scale-in never loses a task.
    worker_prefetch_multiplier=settings.prefetch_multiplier,
    task_acks_late=settings.acks_late,
    task_reject_on_worker_lost=settings.acks_late,
    # Worker heartbeats (worker-heartbeat events every 2 s) stay on: they do not need -E.
    # Task events are opt-in (Flower shows tasks only with them).
    worker_send_task_events=settings.send_task_events,
    task_send_sent_event=settings.send_task_events,
    task_track_started=True,
    result_expires=3600,
    beat_schedule={
        "periodic-report": {
            "task": "app.tasks.periodic_report",
            "schedule": settings.beat_interval,
        },
    },
    beat_schedule_filename=settings.beat_schedule_file,
)

if settings.worker_concurrency is not None:
    app.conf.worker_concurrency = settings.worker_concurrency

if settings.result_backend and settings.global_keyprefix:
    app.conf.result_backend_transport_options = {"global_keyprefix": settings.global_keyprefix}
