"""Video annotation as Celery tasks over the `vision.pipeline` steps, driven by the batch record.

Per video:  prepare (queue video: extract frames, plan tiles, time the model, cut tasks by time)
              └─ detect(chunk) × N  (queue detect: YOLO on tiles; boxes kept on disk, progress in Redis)
                   └─ label         (queue video: merge per frame, write labels, classes, static, record)

No chord: a chord's callback never runs once one header result is lost (a Redis outage stored a
finished chunk as failed, and the batch hung "detecting" forever). Instead every chunk keeps its
boxes on disk (`vision.tile_cache`) before it reports to the batch record, and the chunk that
completes the record's count sends `label`, which reads the boxes back from disk. What a lost
message, an outage or a dead worker leaves undone, the watchdog (`tasks.watchdog`) sends again.

Chunks are not all queued at once: the fleet keeps one chunk per worker process in flight, and
each chunk that ends sends the next one (just before it ends, so no process idles) from the batch
with the fewest chunks left (`batch_store.dispatch_all`). So a small batch submitted behind a big
one takes the next free processes and is done within seconds, and the big one goes on after it.
A chunk holds at least CVFLEET_CHUNK_SECONDS (2 s) of work, from the model's speed measured in
this process (`vision.chunking`).

`prepare` ends the video itself when nothing needs YOLO: the same run is already on disk, or only
static boxes or merge options changed (labels written again from detections.jsonl). A video whose header announces more
frames than decode is annotated as far as it decodes, done with a warning (unless --strict).

Messages carry a batch id, paths, frame names and tile coordinates, never pixels. Every task names
the video's run: a task of a cancelled batch, of a video that ended, or of a run before a retry
does nothing. No task keeps a Celery result: the batch record in Redis is the result.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import uuid
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from tasks import batch_store
from tasks.base import ItemTask
from tasks.roots import OutsideRoots, resolve_inside
from vision import pipeline, tile_cache
from vision.chunking import plan_chunks, time_detector, time_frame_read
from vision.detector import get_detector
from vision.errors import VisionError
from vision.frames import IMAGES_DIR, frame_size, read_video_meta
from vision.settings import AnnotateSettings
from vision.static import Statics, read_statics
from workers import config
from workers.app import app

log = logging.getLogger(__name__)

CHUNKS_PER_PROCESS = 1  # chunks in flight (queued or running) per worker process, all batches together
REDIS_DOWN = (ConnectionError, TimeoutError, BusyLoadingError)


@functools.lru_cache(maxsize=64)
def _batch(batch_id: str) -> dict:
    """The batch's submission, read once per process (it never changes)."""
    info = batch_store.batch(batch_id)
    if info is None:
        raise VisionError(f"batch {batch_id} has no record in Redis (expired or deleted)")
    return info


def _recorded(batch_id: str) -> bool:
    """Whether the batch has a record (read through `_batch`'s cache; a missing one is not cached)."""
    try:
        _batch(batch_id)
    except VisionError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _cfg() -> config.Config:
    return config.load()


def _settings(batch_id: str) -> AnnotateSettings:
    return AnnotateSettings.from_json(_batch(batch_id)["settings"])


def _video(batch_id: str, index: int) -> tuple[Path, Path, int]:
    v = batch_store.video(batch_id, index)
    if not v:
        raise VisionError(f"batch {batch_id} has no video {index}")
    return Path(v["video"]), resolve_inside(v["video_dir"], _batch(batch_id)["roots"]), int(v.get("run") or 1)


def _statics(batch_id: str) -> Statics:
    info = _batch(batch_id)
    paths = [resolve_inside(info[k], info["roots"]) if info.get(k) else None for k in ("static", "static_ignore")]
    return read_statics(*paths)


def _done(
    batch_id: str, index: int, run: int, video_dir: Path, settings: AnnotateSettings, summary: dict, **fields
) -> dict:
    if _batch(batch_id)["preview"]:
        pipeline.write_video_previews(video_dir, settings)
    batch_store.update_video(batch_id, index, run, state="done", summary=summary, **fields)
    tile_cache.drop(video_dir)  # detections.jsonl keeps the same raw boxes
    return {"state": "done", "boxes": summary["boxes"]}


@functools.lru_cache(maxsize=8)
def _ms_per_tile(spec_key: str) -> float:
    """This process's measured speed of the batch's model (once per process and model)."""
    return time_detector(get_detector(json.loads(spec_key)))


class VideoTask(ItemTask):
    """A task of one video of a batch: its failures fail that video alone; it runs only while its
    batch is not cancelled and its video (of its run) has not ended."""

    abstract = True
    expected = (VisionError, OutsideRoots, OSError, SoftTimeLimitExceeded)
    item = "video"
    limit_hint = "use fewer tiles per task"

    def item_exists(self, batch_id: str, index: int | None = None, run: int | None = None, **_) -> bool:
        return _recorded(batch_id) and (index is None or batch_store.gate(batch_id, index, run))

    def fail_item(self, reason: str, task_id: str, batch_id: str, index: int, run: int | None = None, **_) -> None:
        batch_store.fail_video(batch_id, index, reason, run)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Redis unreachable past the client's retries is no fault of the video: the watchdog sends
        the work again once Redis is back (a chunk's boxes are already on disk)."""
        if isinstance(exc, REDIS_DOWN):
            log.warning("%s %s: Redis unreachable (%s); the watchdog will send it again", self.name, task_id, exc)
            return
        try:
            super().on_failure(exc, task_id, args, kwargs, einfo)
        except REDIS_DOWN as e:
            log.warning("%s %s failed (%s) and Redis is unreachable to record it (%s)", self.name, task_id, exc, e)


class ChunkTask(VideoTask):
    """A detect chunk: an expected error fails its video with the reason (and returns it)."""

    abstract = True
    item = "chunk"

    def item_exists(self, batch_id: str, index: int | None = None, run: int | None = None, **_) -> bool:
        if not _recorded(batch_id):
            return True  # a chunk of a deleted batch reports that as its error
        return index is None or batch_store.gate(batch_id, index, run)

    def on_expected(self, reason: str, **ids) -> dict:
        if _recorded(ids["batch_id"]):
            self.fail_item(reason, self.request.id, **ids)
        return {"error": reason}

    def __call__(self, *args, **ids):
        """A chunk that did not finish (its video failed or ended, or the batch was cancelled) leaves
        flight at once, and its batch's next chunk goes out in its place."""
        result = super().__call__(*args, **ids)
        if ids.get("run") is not None and ("error" in result or result.get("state") == "gone"):
            batch_store.chunk_dropped(ids["batch_id"], batch_store.ref(ids["index"], ids["chunk"], ids["run"]))
            feed(ids["batch_id"])
        return result


def feed(batch_id: str | None = None) -> int:
    """Send the next chunks until the fleet has one per worker process in flight, from the batch with
    the fewest chunks left first; returns how many went out. (`batch_id` is only the caller's.)"""
    cfg = _cfg()
    cap = CHUNKS_PER_PROCESS * batch_store.processes(3 * cfg.watchdog_interval + 30)
    out = batch_store.dispatch_all(cap)
    for owner, chunk_ref, video_dir, cache, jobs in out:
        send_chunk(owner, chunk_ref, video_dir, cache, jobs)
    return len(out)


def send_chunk(batch_id: str, chunk_ref: str, video_dir: str, cache: str, jobs: list) -> None:
    index, chunk, run = batch_store.parse_ref(chunk_ref)
    task_id = uuid.uuid4().hex
    batch_store.sent(batch_id, chunk_ref, task_id)  # before the message: `cancel` can revoke it
    detect.apply_async(
        kwargs={
            "batch_id": batch_id,
            "index": index,
            "chunk": chunk,
            "run": run,
            "video_dir": video_dir,
            "cache": cache,
            "jobs": jobs,
        },
        task_id=task_id,
    )


def send_label(batch_id: str, index: int, run: int) -> None:
    task_id = uuid.uuid4().hex
    batch_store.set_task_id(batch_id, index, "label_task_id", task_id)
    label.apply_async(kwargs={"batch_id": batch_id, "index": index, "run": run}, task_id=task_id)


def send_prepare(batch_id: str, index: int, run: int) -> None:
    task_id = uuid.uuid4().hex
    batch_store.set_task_id(batch_id, index, "task_id", task_id)
    prepare.apply_async(kwargs={"batch_id": batch_id, "index": index, "run": run}, task_id=task_id)


def _chunks(batch_id: str, jobs: list, video_dir: Path, settings: AnnotateSettings, frame: str) -> tuple[list, float]:
    """The jobs cut into tasks: --tiles-per-task as given, else by time (ms per tile measured here)."""
    fixed = _batch(batch_id)["tiles_per_task"]
    if fixed:
        return pipeline.chunk_jobs(jobs, fixed), 0.0
    ms_tile = _ms_per_tile(json.dumps(settings.detector_spec(), sort_keys=True))
    ms_frame = time_frame_read(pipeline.read_frame, video_dir / IMAGES_DIR / f"{frame}.jpg")
    return plan_chunks(jobs, ms_tile, ms_frame, _cfg().chunk_seconds), ms_tile


@app.task(name="cvfleet.video.prepare", bind=True, ignore_result=True, base=VideoTask)
def prepare(self, *, batch_id: str, index: int, run: int | None = None) -> dict:
    """Extract (or reuse) the frames, check the model loads, and queue the tiles not yet detected."""
    settings = _settings(batch_id)
    roots = _batch(batch_id)["roots"]
    video, video_dir, current = _video(batch_id, index)
    run = run or current
    video = resolve_inside(video, roots) if video.exists() else video
    for path in (settings.model.cfg, settings.model.weights, settings.model.onnx, settings.model.names):
        if path:
            resolve_inside(path, roots)
    statics = _statics(batch_id)
    if not batch_store.update_video(batch_id, index, run, when=("queued", "extracting"), state="extracting"):
        return {"state": "skipped"}  # a copy of this prepare got further, or the video ended
    meta = pipeline.prepare_video(video, video_dir, settings)
    warning = pipeline.decode_warning(meta, settings)  # strict: raises, the video fails
    tiles = pipeline.plan_tiles(meta, settings)
    fields = {
        "frames": len(meta["frames"]),
        "tiles": len(tiles) * len(meta["frames"]),
        **({"warning": warning} if warning else {}),
    }
    summary = pipeline.reuse(
        video_dir,
        meta,
        settings,
        statics,
        labelling=lambda: batch_store.update_video(batch_id, index, run, state="labelling", **fields),
    )
    if summary is not None:
        return _done(batch_id, index, run, video_dir, settings, summary, **fields)
    get_detector(settings.detector_spec())  # a model that does not load fails here, once
    _, jobs = pipeline.detect_plan(video_dir, meta, settings)
    fields["tiles"] = len(jobs)  # with --skip-still, only the tiles that go through YOLO
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    todo = tile_cache.missing_jobs(cache, jobs)  # a retry reuses every tile already detected
    chunks, ms_tile = _chunks(batch_id, todo, video_dir, settings, todo[0][0]) if todo else ([], 0.0)
    fields.update(tiles_reused=len(jobs) - len(todo), cache=str(cache))
    if ms_tile:
        fields["ms_per_tile"] = round(ms_tile, 1)
    if not batch_store.start_detecting(batch_id, index, run, chunks, **fields):
        return {"state": "skipped"}
    if not chunks:
        batch_store.label_sent(batch_id, index, run)
        send_label(batch_id, index, run)
    else:
        feed(batch_id)
    return {"state": "detecting", "frames": len(meta["frames"]), "tiles": len(jobs), "chunks": len(chunks)}


@app.task(name="cvfleet.detect.tiles", bind=True, ignore_result=True, base=ChunkTask)
def detect(
    self,
    *,
    batch_id: str,
    index: int,
    chunk: int,
    video_dir: str,
    jobs: list,
    run: int | None = None,
    cache: str | None = None,
) -> dict:
    """YOLO on a chunk of [frame name, [x, y, w, h]] jobs; the boxes go to the tile cache on disk,
    the count to the batch record; the video's last chunk sends `label`, every chunk feeds the next.
    A chunk whose boxes are already kept (sent twice, or done before an outage) runs no YOLO."""
    roots = _batch(batch_id)["roots"]
    video_dir = resolve_inside(video_dir, roots)
    if run is not None:
        batch_store.chunk_started(batch_id, batch_store.ref(index, chunk, run))
    kept = resolve_inside(cache, roots) if cache else None
    boxes = tile_cache.read_chunk(kept, jobs) if kept else None
    if boxes is None:
        boxes = pipeline.detect_jobs(video_dir, jobs, get_detector(_settings(batch_id).detector_spec()))
        if kept:
            tile_cache.write_chunk(kept, jobs, boxes)
    if run is not None:
        if batch_store.chunk_done(batch_id, index, chunk, len(jobs), run):
            send_label(batch_id, index, run)
        feed(batch_id)
    return {"tiles": len(jobs), "boxes": sum(len(b) for tiles in boxes.values() for _, b in tiles)}


@app.task(name="cvfleet.video.label", bind=True, ignore_result=True, base=VideoTask)
def label(self, *, batch_id: str, index: int, run: int | None = None) -> dict:
    """Merge every frame's boxes (read back from the tile cache), write the labels, finish the video."""
    settings = _settings(batch_id)
    _, video_dir, current = _video(batch_id, index)
    run = run or current
    if not batch_store.update_video(batch_id, index, run, when=("detecting", "labelling"), state="labelling"):
        return {"state": "skipped"}
    meta = read_video_meta(video_dir)
    if meta is None:
        raise VisionError(f"no readable video.json in {video_dir} (removed while the video ran?); retry the batch")
    jobs = pipeline.planned_jobs(video_dir, meta, settings)
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    detections = pipeline.gather_detections([tile_cache.gathered(cache, jobs)])
    pipeline.merge_frames(video_dir, meta, pipeline.complete_detections(video_dir, detections), settings)
    summary = pipeline.finish_video(video_dir, meta, settings, _statics(batch_id))
    return _done(batch_id, index, run, video_dir, settings, summary)


def submit(
    videos: list[Path],
    out: Path,
    settings: AnnotateSettings,
    static: Path | None = None,
    preview: bool = False,
    tiles_per_task: int | None = None,
    extra_roots=(),
    static_ignore: Path | None = None,
) -> str:
    """Record a batch in Redis and queue one `prepare` per video; returns the batch id.

    Settings and the static file are checked here, before anything is queued. Each video's
    own problems (missing, not a video, truncated) are found by its task and fail it alone.
    """
    from workers import config

    settings.validate()
    for video in videos:  # an absurd tiling is refused before anything is queued
        size = frame_size(video)
        if size:
            pipeline.frame_tiles(*size, settings)
    read_statics(static, static_ignore)
    if tiles_per_task is not None and tiles_per_task < 1:
        raise VisionError(f"--tiles-per-task must be at least 1, got {tiles_per_task}")
    out = Path(os.path.abspath(out))
    videos = [Path(os.path.abspath(v)) for v in videos]
    video_dirs = [pipeline.video_out_dir(out, v) for v in videos]
    seen = {}
    for v, d in zip(videos, video_dirs):
        if d in seen:
            raise VisionError(f"{seen[d].name} and {v} would both write to {d}; rename one of them")
        seen[d] = v
    cfg = config.load()
    model_files = [
        p for p in (settings.model.cfg, settings.model.weights, settings.model.onnx, settings.model.names) if p
    ]
    roots = sorted(
        {
            str(cfg.data),
            str(cfg.cache),
            str(out),
            *(str(v.parent) for v in videos),
            *(str(Path(os.path.abspath(p)).parent) for p in model_files),
            *(str(Path(os.path.abspath(p)).parent) for p in (static, static_ignore) if p),
            *map(str, extra_roots),
        }
    )
    batch_id = batch_store.create_batch(
        [str(v) for v in videos],
        [str(d) for d in video_dirs],
        str(out),
        settings.to_json(),
        str(Path(os.path.abspath(static))) if static else None,
        preview,
        tiles_per_task,
        roots,
        str(Path(os.path.abspath(static_ignore))) if static_ignore else None,
    )
    for i in range(len(videos)):
        send_prepare(batch_id, i, 1)
    return batch_id


def cancel(batch_id: str) -> list[str] | None:
    """Cancel a batch: nothing more is sent, its queued messages are revoked (a worker that still
    takes one skips it), its unfinished videos end `cancelled`. Files already written stay (each is
    whole: atomic writes); annotation.json is never written for a video that did not finish.
    Returns the revoked task ids, or None if there is no such batch."""
    ids = batch_store.cancel(batch_id)
    if ids:
        app.control.revoke(ids)
    return ids


def retry(batch_id: str) -> list[int] | None:
    """Queue the batch's failed and cancelled videos again, as a new run each; frames and the
    detections kept on disk are reused, so only the tiles still missing run YOLO. Returns the
    indexes of the videos queued, or None if there is no such batch."""
    queued = batch_store.retry(batch_id)
    if queued is None:
        return None
    for index, run in queued:
        send_prepare(batch_id, index, run)
    return [index for index, _ in queued]
