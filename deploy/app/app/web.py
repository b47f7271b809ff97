"""The "web" of the stack: enqueues tasks over HTTP.  `uvicorn app.web:app --port 8000`."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from .celery_app import QUEUES, app as celery_app
from .tasks import TASK_FOR_QUEUE

MAX_BURST = 10_000
MAX_IDS_RETURNED = 1000

app = FastAPI(title="celery-scaler sample web", version="1.0.0")


class EnqueueRequest(BaseModel):
    count: int = Field(1, ge=1, le=MAX_BURST, description="number of tasks to send")
    priority: Optional[int] = Field(None, ge=0, le=9,
                                    description="Redis priority: 0 is the highest, 9 the lowest")
    countdown: Optional[float] = Field(None, ge=0, le=86_400, description="ETA = now + countdown seconds")
    duration: float = Field(0.0, ge=0, le=3600, description="seconds each task sleeps")
    fail: bool = False
    retry_times: int = Field(0, ge=0, le=10)
    retry_delay: float = Field(1.0, ge=0, le=3600)
    tag: Optional[str] = Field(None, max_length=200)


class EnqueueResponse(BaseModel):
    queue: str
    queued: int
    task_ids: list[str]


def _enqueue(queue: str, req: EnqueueRequest) -> EnqueueResponse:
    task = TASK_FOR_QUEUE[queue]
    options = {"queue": queue}
    if req.priority is not None:
        options["priority"] = req.priority
    if req.countdown is not None:
        options["countdown"] = req.countdown
    kwargs = {"duration": req.duration, "fail": req.fail, "retry_times": req.retry_times,
              "retry_delay": req.retry_delay, "tag": req.tag}
    ids = []
    # One pooled producer connection for the whole burst.
    with celery_app.producer_or_acquire() as producer:
        for _ in range(req.count):
            ids.append(task.apply_async(kwargs=kwargs, producer=producer, **options).id)
    return EnqueueResponse(queue=queue, queued=len(ids), task_ids=ids[:MAX_IDS_RETURNED])


# Plain `def` endpoints: publishing is blocking I/O, FastAPI runs these in its thread pool.
@app.post("/enqueue/{queue}", response_model=EnqueueResponse)
def enqueue(queue: Literal["high", "default", "low"], req: EnqueueRequest) -> EnqueueResponse:
    """Send `count` tasks to `queue` (high, default or low)."""
    return _enqueue(queue, req)


@app.get("/healthz")
def healthz() -> dict:
    """Liveness: the process serves HTTP. Does not touch the broker."""
    return {"status": "ok"}


@app.get("/readyz")
def readyz() -> dict:
    """Readiness: the broker answers."""
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any broker error means not ready
        raise HTTPException(status_code=503, detail=f"broker unavailable: {type(exc).__name__}")
    return {"status": "ok", "queues": list(QUEUES)}
