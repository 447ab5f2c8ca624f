"""The video's home side of frames through Redis (CVFLEET_STORAGE=redis, the default): hosts that
share nothing but Redis.

Every worker that takes the `video` queue (it runs where the videos and the output are) runs a
stager thread in its main process. It takes two kinds of work from the `cvfleet:stage` list:

* a chunk the fleet dispatched: its frames' JPEG bytes, as extracted, go into Redis under their
  sha256 (held until its report releases them, expiring after 3 stall windows at most), and its
  detect task goes out naming them, so a detect host needs only the Redis URL. A chunk whose boxes
  are already on disk (sent twice, done before an outage) runs no YOLO: it is reported at once.
* a video whose detect hosts kept boxes in Redis: they are written to `.tiles/` as a detect task
  with the folder would have, and the frames whose tiles are all done get their labels early.

Redis holds only the frames of chunks in flight: the dispatch caps those at one per worker process
of the fleet, so its memory is set by the fleet's size, not the video's length. A thread, not a
pool process: staging reads files and writes Redis, and must never wait behind a long task.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from celery.signals import worker_ready

from tasks import batch_store
from tasks.annotate import context, dispatch
from tasks.annotate.report import collect, reported
from tasks.batch_records import ChunkRef, VideoRun
from vision import tile_cache
from vision.errors import VisionError
from vision.frames import IMAGES_DIR

log = logging.getLogger(__name__)


def frames_of(video_dir: Path, jobs: list) -> dict[str, tuple[str, bytes]]:
    """{frame name: (sha256, JPEG bytes)} of the frames a chunk's jobs read."""
    out = {}
    for name, _ in jobs:
        if name not in out:
            path = video_dir / IMAGES_DIR / f"{name}.jpg"
            try:
                data = path.read_bytes()
            except OSError:
                raise VisionError(f"cannot read frame image {path}; re-extract the frames") from None
            out[name] = (hashlib.sha256(data).hexdigest(), data)
    return out


def stage_chunk(chunk: ChunkRef, task_id: str, video_dir: str, cache: str) -> str:
    """Put a dispatched chunk's frames in Redis and send its detect task (or report kept boxes)."""
    run = chunk.video
    jobs = batch_store.plan(run, [chunk.number]).get(chunk.number)
    if jobs is None or not batch_store.gate(run):
        batch_store.chunk_dropped(chunk)  # its video ended or was retried: no place held
        dispatch.feed()
        return "dropped"
    home = context.inside(run.batch, video_dir)
    kept = tile_cache.read_chunk(context.inside(run.batch, cache), jobs) if cache else None
    if kept is not None:
        reported(chunk, len(jobs))
        return "kept"
    try:
        frames = frames_of(home, jobs)
    except VisionError as e:
        batch_store.fail(run, str(e))
        batch_store.chunk_dropped(chunk)
        dispatch.feed()
        return "failed"
    batch_store.put_frames(chunk, dict(frames.values()), int(3 * context.cfg().stall_seconds))
    dispatch.send_detect(chunk, task_id, video_dir, cache, jobs, {name: sha for name, (sha, _) in frames.items()})
    return "staged"


def handle(item: dict) -> str:
    batch_id = item["batch"]
    if not context.recorded(batch_id):
        return "gone"
    if "stage" in item:
        return stage_chunk(ChunkRef.parse(batch_id, item["stage"]), item["task_id"], item["video_dir"], item["cache"])
    collect(VideoRun(batch_id, item["index"], item["run"]))
    return "collected"


def run_forever(owner: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            taken = batch_store.next_staged(owner, timeout=1)
            if taken is not None:
                handle(taken[0])
                batch_store.staged_done(owner, taken[1])
        except Exception as e:  # Redis away, a bad record: the next item, or the watchdog, goes on
            log.warning("stager: %s: %s", e.__class__.__name__, e)
            stop.wait(1)


_stop = threading.Event()


@worker_ready.connect
def _start(sender=None, **_):
    """Start the stager thread in a worker that takes the `video` queue (where the files are). It
    takes items under the worker's name, the one its heartbeat carries (`tasks.watchdog`)."""
    queues = {q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", ())}
    if queues and "video" not in queues:
        return
    owner = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    threading.Thread(target=run_forever, args=(owner, _stop), name="cvfleet-stager", daemon=True).start()
