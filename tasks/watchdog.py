"""The batch watchdog: nothing stays running forever.

A video's progress lives in its batch record; a message can still be lost (a Redis outage longer
than the clients' retries, a revoked or expired message, a worker killed whole), and then nobody
would move the video on. Every CVFLEET_WATCHDOG_INTERVAL seconds (10) one worker (a Redis lock
picks it) looks at every batch with a video not yet ended and, with no news for
CVFLEET_STALL_SECONDS (300):

* a detect chunk in flight      -> sent again (its boxes may already be on disk: then no YOLO)
* a video detecting with chunks neither in flight nor pending nor done -> those chunks queued again
* a video whose chunks are all done, or that is labelling -> `label` sent again
* a video queued or extracting  -> `prepare` sent again (after 1, 2, 3 stall windows)
* a video streaming (segments extracting) with nothing in flight or pending -> the `extract` of each
  segment not yet done sent again (of the last one when all are done but the plan was not closed)

Each is sent at most MAX_SENDS times; after that the video fails with the reason. It also feeds
every batch (a chunk that ended during an outage may not have sent its batch's next) and takes
batches whose videos all ended off its list. Every send is safe twice: tasks are idempotent and
check the video's state and run before they act.

The watchdog runs as a thread in each worker's main process, started when the worker is ready;
each worker also says there how many pool processes it has (chunks are fed per process).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery.signals import worker_ready

from tasks import batch_store
from tasks.annotate import dispatch
from tasks.batch_records import ChunkRef, VideoRecord, VideoState
from workers import config

log = logging.getLogger(__name__)

MAX_SENDS = 3


def look_after(batch_id: str, stall: float, now: float | None = None) -> list[str]:
    """One look at one batch; returns what was done, one line each (for the log and tests)."""
    now = time.time() if now is None else now
    info = batch_store.progress(batch_id)
    if info is None or info.batch.cancelled or info.finished:
        batch_store.ended(batch_id)
        return [f"{batch_id}: ended"]
    actions = []
    if dispatch.feed():
        actions.append(f"{batch_id}: fed")
    videos = info.videos
    flying = set()
    for chunk, seen in batch_store.inflight(batch_id):
        index = chunk.video.index
        flying.add(index)
        v = videos[index] if index < len(videos) else None
        if v is None or v.state is not VideoState.DETECTING or v.run != chunk.video.run:
            batch_store.chunk_dropped(chunk)  # its video ended: it holds no place any more
            continue
        if now - seen >= stall:
            actions.append(_resend_chunk(chunk, v))
    waiting = flying | batch_store.pending_videos(batch_id)
    for v in videos:
        if v.ended:
            continue
        idle = now - (v.updated or 0)
        if v.state in (VideoState.QUEUED, VideoState.EXTRACTING):
            if idle >= stall * (1 + v.prepare_sends):
                actions.append(_again(v, "prepare", v.prepare_sends, dispatch.send_prepare))
        elif v.state is VideoState.DETECTING and v.index not in waiting and idle >= stall:
            if v.streaming:
                actions.append(_extract_again(v))
            elif len(batch_store.done_chunks(v.current)) >= (v.chunks or 0):
                actions.append(_again(v, "label", v.label_sends, dispatch.send_label))
            else:
                actions.append(_requeue_missing(v))
        elif v.state is VideoState.LABELLING and idle >= stall:
            actions.append(_again(v, "label", v.label_sends, dispatch.send_label))
    return actions


def _resend_chunk(chunk: ChunkRef, v: VideoRecord) -> str:
    batch_id = chunk.video.batch
    sends = batch_store.sends(chunk)
    if sends >= MAX_SENDS:
        reason = (
            f"detect chunk {chunk.number} was sent {sends} times and never reported back "
            "(lost in a Redis outage, revoked, expired, or its worker died each time); `cvfleet batch retry` it"
        )
        batch_store.fail(chunk.video, reason)
        batch_store.chunk_dropped(chunk)
        v.state = VideoState.FAILED  # its other chunks in flight are dropped on this same look
        return f"{batch_id}: video {v.index} failed: {reason}"
    jobs = batch_store.plan(chunk.video, [chunk.number]).get(chunk.number)
    if jobs is None:
        return f"{batch_id}: chunk {chunk.name} has no plan"
    batch_store.touch_inflight(chunk)
    dispatch.send_chunk(chunk, v.video_dir, v.cache, jobs)
    return f"{batch_id}: chunk {chunk.name} sent again"


def _requeue_missing(v: VideoRecord) -> str:
    """Chunks of a detecting video that are nowhere (not done, in flight or pending) go back to pending."""
    done = batch_store.done_chunks(v.current)
    missing = [c for c in range(v.chunks or 0) if c not in done]
    batch_store.requeue(v.current, missing)
    if missing:
        dispatch.feed()
    batch_store.note(v.current, updated_by="watchdog")
    return f"{v.batch}: video {v.index}: {len(missing)} missing chunk(s) queued again"


def _extract_again(v: VideoRecord) -> str:
    """A streaming video with no news: its segments not done extract again (a copy of `extract`
    skips the tiles already planned or detected)."""
    done = set(batch_store.segments(v.current))
    missing = [k for k in range(v.streaming) if k not in done] or [v.streaming - 1]
    if v.extract_sends >= MAX_SENDS:
        return _again(v, "extract", v.extract_sends, None)
    batch_store.note(v.current, extract_sends=v.extract_sends + 1)
    for segment in missing:
        dispatch.send_extract(v.current, segment)
    return f"{v.batch}: video {v.index}: extract of segment(s) {missing} sent again"


def _again(v: VideoRecord, step: str, sends: int, send) -> str:
    if sends >= MAX_SENDS:
        reason = f"its {step} task was sent {sends + 1} times and never finished; `cvfleet batch retry` it"
        batch_store.fail(v.current, reason)
        return f"{v.batch}: video {v.index} failed: {reason}"
    batch_store.note(v.current, **{f"{step}_sends": sends + 1})
    send(v.current)
    return f"{v.batch}: video {v.index}: {step} sent again"


def tick(stall: float, interval: float, worker: str = "") -> list[str]:
    """One look at every running batch, by the one worker that takes the turn for this interval."""
    if not batch_store.watchdog_turn(worker or str(os.getpid()), interval * 0.9):
        return []
    actions = []
    recovered = batch_store.recover_staged(config.load().heartbeat_fresh)
    if recovered:
        actions.append(f"{recovered} staged item(s) of a worker not heard from put back")
    for batch_id in batch_store.running_batches():
        actions += look_after(batch_id, stall)
    return actions


def run_forever(worker: str, processes: int, stop: threading.Event) -> None:
    """The watchdog loop of one worker: heartbeat, then a tick, every interval; survives outages."""
    cfg = config.load()
    while not stop.wait(cfg.watchdog_interval):
        try:
            batch_store.heartbeat(worker, processes)
            for line in tick(cfg.stall_seconds, cfg.watchdog_interval, worker):
                log.warning("watchdog: %s", line)
        except Exception as e:  # Redis away, a bad record: the next tick tries again
            log.warning("watchdog: %s: %s", e.__class__.__name__, e)


_stop = threading.Event()


@worker_ready.connect
def _start(sender=None, **_):
    """Start the watchdog thread in the worker's main process, and say at once that the worker is up
    (with its pool processes if it consumes the detect queue, else 0)."""
    name = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    processes = getattr(getattr(sender, "controller", None), "concurrency", None) or os.cpu_count() or 1
    queues = {q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", ())}
    if queues and "detect" not in queues:
        processes = 0
    try:
        batch_store.heartbeat(name, processes)
    except Exception as e:
        log.warning("watchdog: first heartbeat failed: %s", e)
    threading.Thread(target=run_forever, args=(name, processes, _stop), name="cvfleet-watchdog", daemon=True).start()
