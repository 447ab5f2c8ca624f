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

from tasks import annotate, batch_store
from tasks.store import client, key

log = logging.getLogger(__name__)

MAX_SENDS = 3
LOCK = key("watchdog")


def look_after(batch_id: str, stall: float, now: float | None = None) -> list[str]:
    """One look at one batch; returns what was done, one line each (for the log and tests)."""
    now = time.time() if now is None else now
    info = batch_store.progress(batch_id)
    if info is None or info["cancelled"] or info["finished"]:
        batch_store.ended(batch_id)
        return [f"{batch_id}: ended"]
    actions = []
    if annotate.feed(batch_id):
        actions.append(f"{batch_id}: fed")
    videos = info["video_states"]
    flying = set()
    for chunk_ref, seen in batch_store.inflight(batch_id):
        index, chunk, run = batch_store.parse_ref(chunk_ref)
        flying.add(index)
        v = videos[index] if index < len(videos) else None
        if v is None or v["state"] != "detecting" or int(v.get("run") or 1) != run:
            batch_store.chunk_dropped(batch_id, chunk_ref)  # its video ended: it holds no place any more
            continue
        if now - seen >= stall:
            actions.append(_resend_chunk(batch_id, chunk_ref, v))
    pending = {batch_store.parse_ref(r)[0] for r in client().lrange(key("batch", batch_id, "pending"), 0, -1)}
    for v in videos:
        if v["state"] in batch_store.TERMINAL:
            continue
        index, run = int(v["index"]), int(v.get("run") or 1)
        idle = now - float(v.get("updated") or 0)
        if v["state"] in ("queued", "extracting"):
            sends = int(v.get("prepare_sends") or 0)
            if idle >= stall * (1 + sends):
                actions.append(_again(batch_id, index, run, "prepare", sends, annotate.send_prepare))
        elif v["state"] == "detecting" and v.get("streaming"):
            if index not in flying and index not in pending and idle >= stall:
                actions.append(_extract_again(batch_id, index, run, v))
        elif v["state"] == "detecting" and index not in flying and index not in pending and idle >= stall:
            if batch_store.chunks_done(batch_id, index) >= int(v.get("chunks") or 0):
                sends = int(v.get("label_sends") or 0)
                actions.append(_again(batch_id, index, run, "label", sends, annotate.send_label))
            else:
                actions.append(_requeue_missing(batch_id, index, run, int(v.get("chunks") or 0)))
        elif v["state"] == "labelling" and idle >= stall:
            sends = int(v.get("label_sends") or 0)
            actions.append(_again(batch_id, index, run, "label", sends, annotate.send_label))
    return actions


def _resend_chunk(batch_id: str, chunk_ref: str, v: dict) -> str:
    index, chunk, run = batch_store.parse_ref(chunk_ref)
    sends = batch_store.sends(batch_id, chunk_ref)
    if sends >= MAX_SENDS:
        reason = (
            f"detect chunk {chunk} was sent {sends} times and never reported back "
            "(lost in a Redis outage, revoked, expired, or its worker died each time); `cvfleet batch retry` it"
        )
        batch_store.fail_video(batch_id, index, reason, run)
        batch_store.chunk_dropped(batch_id, chunk_ref)
        v["state"] = "failed"  # its other chunks in flight are dropped on this same look
        return f"{batch_id}: video {index} failed: {reason}"
    jobs = batch_store.plan_jobs(batch_id, index, chunk)
    if jobs is None:
        return f"{batch_id}: chunk {chunk_ref} has no plan"
    batch_store.touch_inflight(batch_id, chunk_ref)
    annotate.send_chunk(batch_id, chunk_ref, v["video_dir"], v.get("cache") or "", jobs)
    return f"{batch_id}: chunk {chunk_ref} sent again"


def _requeue_missing(batch_id: str, index: int, run: int, chunks: int) -> str:
    """Chunks of a detecting video that are nowhere (not done, in flight or pending) go back to pending."""
    done = set(map(int, client().hkeys(key("batch", batch_id, "video", index, "chunks"))))
    missing = [batch_store.ref(index, c, run) for c in range(chunks) if c not in done]
    if missing:
        client().rpush(key("batch", batch_id, "pending"), *missing)
        annotate.feed(batch_id)
    batch_store.update_video(batch_id, index, run, updated_by="watchdog")
    return f"{batch_id}: video {index}: {len(missing)} missing chunk(s) queued again"


def _extract_again(batch_id: str, index: int, run: int, v: dict) -> str:
    """A streaming video with no news: its segments not done extract again (a copy of `extract`
    skips the tiles already planned or detected)."""
    segments = int(v["streaming"])
    done = set(batch_store.segments(batch_id, index))
    missing = [k for k in range(segments) if k not in done] or [segments - 1]
    sends = int(v.get("extract_sends") or 0)
    if sends >= MAX_SENDS:
        return _again(batch_id, index, run, "extract", sends, None)
    batch_store.update_video(batch_id, index, run, extract_sends=sends + 1)
    for segment in missing:
        annotate.send_extract(batch_id, index, run, segment)
    return f"{batch_id}: video {index}: extract of segment(s) {missing} sent again"


def _again(batch_id: str, index: int, run: int, step: str, sends: int, send) -> str:
    if sends >= MAX_SENDS:
        reason = f"its {step} task was sent {sends + 1} times and never finished; `cvfleet batch retry` it"
        batch_store.fail_video(batch_id, index, reason, run)
        return f"{batch_id}: video {index} failed: {reason}"
    batch_store.update_video(batch_id, index, run, **{f"{step}_sends": sends + 1})
    send(batch_id, index, run)
    return f"{batch_id}: video {index}: {step} sent again"


def tick(stall: float, interval: float, worker: str = "") -> list[str]:
    """One look at every running batch, by the one worker that takes the lock for this interval."""
    if not client().set(LOCK, worker or str(os.getpid()), nx=True, px=max(int(interval * 1000 * 0.9), 1)):
        return []
    actions = []
    for batch_id in batch_store.running_batches():
        actions += look_after(batch_id, stall)
    return actions


def run_forever(worker: str, processes: int, stop: threading.Event) -> None:
    """The watchdog loop of one worker: heartbeat, then a tick, every interval; survives outages."""
    cfg = annotate._cfg()
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
