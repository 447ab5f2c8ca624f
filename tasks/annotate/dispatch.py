"""Sending the annotation job's messages, by task name, and keeping the fleet fed.

The fleet keeps one detect chunk per worker process in flight (queued or running, all batches
together): `feed` tops it up from the batches' pending lists, the batch with the fewest chunks left
first (`batch_store.dispatch_all`), and every chunk that ends calls it, so no process idles and a
small batch submitted behind a big one takes the next free processes. Each send records its task
id before the message goes out, so `batch cancel` can revoke it.
"""

from __future__ import annotations

import uuid

from tasks import batch_store
from tasks.annotate import context
from tasks.batch_records import ChunkRef, VideoRun
from workers.app import app

PREPARE = "cvfleet.video.prepare"
EXTRACT = "cvfleet.video.extract"
DETECT = "cvfleet.detect.tiles"
LABEL = "cvfleet.video.label"

CHUNKS_PER_PROCESS = 1  # chunks in flight (queued or running) per worker process, all batches together


def _ids(run: VideoRun) -> dict:
    return {"batch_id": run.batch, "index": run.index, "run": run.run}


def feed() -> int:
    """Send the next chunks until the fleet has one per worker process in flight; how many went out."""
    out = batch_store.dispatch_all(CHUNKS_PER_PROCESS * context.fleet_processes())
    for chunk, video_dir, cache, jobs in out:
        send_chunk(chunk, video_dir, cache, jobs)
    return len(out)


def send_chunk(chunk: ChunkRef, video_dir: str, cache: str, jobs: list) -> None:
    """Send a detect chunk: by path where every worker sees the storage root (CVFLEET_STORAGE=shared),
    else through the video's home, which puts its frames in Redis first (`tasks.annotate.stager`).
    Its task id is recorded first either way, so `cancel` can revoke it."""
    task_id = uuid.uuid4().hex
    batch_store.sent(chunk, task_id)
    if context.cfg().storage == "shared":
        send_detect(chunk, task_id, video_dir, cache, jobs)
    else:
        item = {"stage": chunk.name, "batch": chunk.video.batch, "task_id": task_id}
        batch_store.stage({**item, "video_dir": video_dir, "cache": cache})


def send_detect(chunk: ChunkRef, task_id: str, video_dir: str, cache: str, jobs: list, frames=None) -> None:
    """The detect task itself; with `frames` ({name: content key}) it reads them from Redis."""
    kwargs = {**_ids(chunk.video), "chunk": chunk.number, "video_dir": video_dir, "cache": cache, "jobs": jobs}
    if frames is not None:
        kwargs["frames"] = frames
    app.send_task(DETECT, kwargs=kwargs, task_id=task_id)


def send_label(run: VideoRun) -> None:
    task_id = uuid.uuid4().hex
    batch_store.set_task_id(run, "label_task_id", task_id)
    app.send_task(LABEL, kwargs=_ids(run), task_id=task_id)


def send_prepare(run: VideoRun) -> None:
    task_id = uuid.uuid4().hex
    batch_store.set_task_id(run, "task_id", task_id)
    app.send_task(PREPARE, kwargs=_ids(run), task_id=task_id)


def send_extract(run: VideoRun, segment: int) -> None:
    app.send_task(EXTRACT, kwargs={**_ids(run), "segment": segment})
