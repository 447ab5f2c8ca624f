"""Video annotation as Celery tasks over the `vision.pipeline` steps, driven by the batch record.

Per video:  prepare (queue video: reuse what is on disk, or cut the video into extraction segments)
              └─ extract(segment) × S  (queue video: decode and write frames; as they land, their
                   │                    tiles are planned into detect chunks and queued at once)
                   └─ detect(chunk) × N  (queue detect: YOLO on tiles; boxes kept on disk, progress in
                        │                 Redis; the labels of frames whose tiles are all done are
                        │                 written right away, in any order of completion)
                        └─ label         (queue video: merge every frame, detections.jsonl, labels,
                                          statics, corrections, review, record)

Streaming: detection starts with the first frames, not after the whole video is decoded, and a
label file appears seconds after submission. A short video is one segment; a long one is cut into
as many as keep the fleet fed (vision.chunking.segment_count), each task seeking to its first frame
with the global frame numbering kept; the last segment to finish checks that every seek was exact
(the frame after a segment is the next segment's first) and writes video.json as one pass would,
or starts the video again in one pass. With --skip-still the motion plan runs frame after frame, so
the video is one segment; with --temporal or --skip-still no label is written before the label step
(a frame's labels then depend on other frames).

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
from vision.chunking import SEGMENT_SECONDS, plan_chunks, segment_count, time_detector, time_extract, time_frame_read
from vision.detector import get_detector
from vision.errors import VisionError
from vision.frames import (
    IMAGES_DIR,
    extract_segment,
    frame_size,
    frames_before,
    join_segments,
    probe,
    read_video_meta,
    reusable_meta,
    sampling_settings,
    segment_bounds,
    write_meta,
)
from vision.motion import STILL_NAME, StillPlanner, gated_jobs, write_still
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
def _timed(spec_key: str) -> float:
    return time_detector(get_detector(json.loads(spec_key)))


def _ms_per_tile(settings: AnnotateSettings) -> float:
    """This process's measured speed of the settings' model (timed once per process and model)."""
    return _timed(json.dumps(settings.detector_spec(), sort_keys=True))


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
    ms_tile = _ms_per_tile(settings)
    ms_frame = time_frame_read(pipeline.read_frame, video_dir / IMAGES_DIR / f"{frame}.jpg")
    return plan_chunks(jobs, ms_tile, ms_frame, _cfg().chunk_seconds), ms_tile


@app.task(name="cvfleet.video.prepare", bind=True, ignore_result=True, base=VideoTask)
def prepare(self, *, batch_id: str, index: int, run: int | None = None) -> dict:
    """Reuse what is on disk, or start streaming the video: its frames are extracted by `extract`
    tasks that queue detect chunks as frames land."""
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
    info = probe(video)
    info["scale"] = pipeline.video_scale(video, info)  # vision/content_scale.py
    sampling = sampling_settings(**settings.sampling())
    meta = reusable_meta(video_dir, info, sampling)
    if meta is None:
        return _stream(batch_id, index, run, video, video_dir, settings, info, sampling)
    warning = pipeline.decode_warning(meta, settings)  # strict: raises, the video fails
    tiles = pipeline.plan_tiles(meta, settings)
    fields = {
        "frames": len(meta["frames"]),
        "tiles": len(tiles) * len(meta["frames"]),
        "width": meta["width"],
        "height": meta["height"],
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


def _stream(batch_id, index, run, video, video_dir, settings, info, sampling) -> dict:
    """Cut the video into extraction segments (vision.chunking.segment_count: one for a short video,
    or with --skip-still, whose plan runs frame after frame) and send one `extract` per segment."""
    get_detector(settings.detector_spec())  # a model that does not load fails here, once
    v = batch_store.video(batch_id, index) or {}
    expected = frames_before(info["frame_count"], info["fps"], sampling) if info["frame_count"] > 0 else 0
    if sampling["max_frames"]:
        expected = min(expected, sampling["max_frames"])
    per_frame = 0
    if info["width"] > 0:
        per_frame = len(pipeline.frame_tiles(info["width"], info["height"], settings, info["scale"]))
    n = 1
    if settings.skip_still is not None or v.get("single_pass"):
        pass  # the motion plan runs frame after frame; a seek missed on this video before
    elif _cfg().segments > 0:
        n = _cfg().segments
    elif expected > 1 and per_frame:
        ms_extract = time_extract(video, sampling["jpeg_quality"])
        if expected * ms_extract >= 2000 * SEGMENT_SECONDS:  # else one segment, without timing the model
            processes = batch_store.processes(3 * _cfg().watchdog_interval + 30)
            n = segment_count(expected, ms_extract, _ms_per_tile(settings) * per_frame, processes)
    span = info["frame_count"] if n == 1 else _source_span(info, sampling)
    bounds = segment_bounds(span, n)
    cache = tile_cache.cache_dir(video_dir, info, settings.fingerprint("detection"))
    fields = {"frames": expected, "cache": str(cache), "info": info, "bounds": bounds}
    if per_frame:
        fields.update(width=info["width"], height=info["height"], tiles=per_frame * expected)
    if not batch_store.start_streaming(batch_id, index, run, len(bounds), **fields):
        return {"state": "skipped"}
    for segment in range(len(bounds)):
        send_extract(batch_id, index, run, segment)
    return {"state": "detecting", "segments": len(bounds)}


def _source_span(info: dict, sampling: dict) -> int:
    """The source frames a capped extraction (--max-frames) can reach: segments past it are empty."""
    count, cap = info["frame_count"], sampling["max_frames"]
    if not cap:
        return count
    if sampling["fps"] and info["fps"] > sampling["fps"]:
        return min(count, int(cap * info["fps"] / sampling["fps"]) + 2)
    return min(count, cap * sampling["every"])


def send_extract(batch_id: str, index: int, run: int, segment: int) -> None:
    extract.apply_async(kwargs={"batch_id": batch_id, "index": index, "run": run, "segment": segment})


class _Planner:
    """A segment's frames as they land, turned into detect chunks: every frame's tiles (less the
    still ones, less those already detected or planned by an earlier copy of this task) gather
    until they hold chunk_seconds of work, then go to Redis as chunks and the fleet is fed."""

    def __init__(self, batch_id, index, run, video_dir, settings, info, v):
        self.batch_id, self.index, self.run, self.video_dir, self.settings = batch_id, index, run, video_dir, settings
        self.scale = info.get("scale", 1.0)
        self.tiles = None
        if info["width"]:
            self.tiles = pipeline.frame_tiles(info["width"], info["height"], settings, self.scale)
        self.cache = Path(v["cache"])
        self.done = set(tile_cache.kept_tiles(self.cache))
        for jobs in batch_store.plan(batch_id, index).values():
            self.done.update((name, tuple(tile)) for name, tile in jobs)
        self.fixed = _batch(batch_id)["tiles_per_task"]
        self.still_planner, self.still, self.gated = None, {}, 0
        self.block, self.cost, self.reused, self.ms_tile, self.ms_frame = [], 0.0, 0, 0.0, 0.0

    def frame(self, name: str, source: int, image) -> None:
        if self.tiles is None:  # a header without the frame size: the first frame tells it
            self.tiles = pipeline.frame_tiles(image.shape[1], image.shape[0], self.settings, self.scale)
        jobs = pipeline.tile_jobs({"frames": [name]}, self.tiles)
        if self.settings.skip_still is not None:
            if self.still_planner is None:
                self.still_planner = StillPlanner(self.video_dir, self.tiles, self.settings.skip_still)
            still = self.still_planner.add(name)
            if still:
                self.still[name] = still
                jobs = gated_jobs(jobs, {name: still})
        self.gated += len(jobs)
        todo = [j for j in jobs if (j[0], tuple(j[1])) not in self.done]
        self.reused += len(jobs) - len(todo)
        if todo and not self.fixed and not self.ms_tile:
            self.ms_tile = _ms_per_tile(self.settings)
            self.ms_frame = time_frame_read(pipeline.read_frame, self.video_dir / IMAGES_DIR / f"{name}.jpg")
        self.block += todo
        self.cost += len(todo) * self.ms_tile + (self.ms_frame if todo else 0.0)
        full = len(self.block) >= self.fixed if self.fixed else self.cost >= 1000 * _cfg().chunk_seconds
        if full:
            self.flush()

    def flush(self) -> None:
        if not self.block and not self.reused:
            return
        chunks = []
        if self.block and self.fixed:
            chunks = pipeline.chunk_jobs(self.block, self.fixed)
        elif self.block:
            chunks = plan_chunks(self.block, self.ms_tile, self.ms_frame, _cfg().chunk_seconds)
        if batch_store.add_chunks(self.batch_id, self.index, self.run, chunks, self.reused) is None:
            raise _Gone()
        self.block, self.cost, self.reused = [], 0.0, 0
        if chunks:
            feed(self.batch_id)


class _Gone(Exception):
    """The video stopped streaming in this run (ended, cancelled, retried): stop extracting."""


@app.task(name="cvfleet.video.extract", bind=True, ignore_result=True, base=VideoTask)
def extract(self, *, batch_id: str, index: int, run: int, segment: int) -> dict:
    """Extract one segment of a streaming video; each frame's tiles are queued for detection as soon
    as it is on disk. The last segment to finish joins them (exact seeks checked) and closes the plan."""
    settings = _settings(batch_id)
    video, video_dir, _ = _video(batch_id, index)
    video = resolve_inside(video, _batch(batch_id)["roots"])
    v = batch_store.video(batch_id, index) or {}
    if not v.get("streaming"):
        return {"state": "skipped"}
    info, bounds = json.loads(v["info"]), json.loads(v["bounds"])
    sampling = sampling_settings(**settings.sampling())
    planner = _Planner(batch_id, index, run, video_dir, settings, info, v)
    start, stop = bounds[segment]
    try:
        part = extract_segment(video, video_dir, info, sampling, start, stop, on_frame=planner.frame)
        planner.flush()
    except _Gone:
        return {"state": "gone"}
    if planner.still_planner is not None:
        write_still(video_dir, planner.still)
    last = batch_store.segment_done(batch_id, index, run, segment, {**part, "gated": planner.gated})
    if last:
        _close(batch_id, index, run, video_dir, settings, info, sampling)
    return {"state": "extracted", "segment": segment, "frames": len(part["names"])}


def _close(batch_id, index, run, video_dir, settings, info, sampling) -> None:
    """Every segment is extracted: write video.json as one pass would have, and close the plan (the
    label goes out now if every chunk is already done). A seek that was not exact (the frame after a
    segment is not the next segment's first) starts the video again as one segment."""
    parts = batch_store.segments(batch_id, index)
    ordered = [parts[k] for k in sorted(parts)]
    meta = join_segments(info, sampling, ordered)
    if meta is None:
        log.warning("batch %s video %d: seeking was not exact; extracting it again in one pass", batch_id, index)
        tile_cache.drop(video_dir)
        new = batch_store.restart_video(batch_id, index, run, "single_pass", 1)
        if new:
            send_prepare(batch_id, index, new)
        return
    warning = pipeline.decode_warning(meta, settings)  # strict: raises, the video fails
    write_meta(video_dir, meta)
    if settings.skip_still is None:
        (video_dir / STILL_NAME).unlink(missing_ok=True)
    if settings.skip_still is not None:  # one segment: its count of the tiles that go through YOLO
        tiles = ordered[0]["gated"]
    else:
        tiles = len(pipeline.plan_tiles(meta, settings)) * len(meta["frames"])
    fields = {"frames": len(meta["frames"]), "tiles": tiles, "width": meta["width"], "height": meta["height"]}
    if warning:
        fields["warning"] = warning
    if batch_store.close_plan(batch_id, index, run, **fields):
        send_label(batch_id, index, run)


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
        last, newly = batch_store.chunk_done(batch_id, index, chunk, len(jobs), run)
        if last:
            send_label(batch_id, index, run)
        feed(batch_id)
        if newly and kept and not last:
            _label_early(batch_id, index, video_dir, kept, newly)
    return {"tiles": len(jobs), "boxes": sum(len(b) for tiles in boxes.values() for _, b in tiles)}


def _label_early(batch_id: str, index: int, video_dir: Path, cache: Path, newly: range) -> None:
    """Write the labels of the frames whose every tile is now detected: those of the chunks `newly`
    joined to the done prefix (and of the chunks before, back to where their first frame starts), less
    a frame the next chunk goes on with. `pipeline.label_early` writes the bytes the label step will write."""
    settings = _settings(batch_id)
    if not pipeline.labels_stream(settings):
        return
    v = batch_store.video(batch_id, index) or {}
    if not v.get("width"):
        return
    width, height = int(v["width"]), int(v["height"])
    plan = batch_store.plan(batch_id, index, range(newly.start, newly.stop + 1))
    lo = newly.start
    while lo > 0 and newly.start in plan:  # back to the chunk where the first frame starts
        before = batch_store.plan(batch_id, index, [lo - 1]).get(lo - 1)
        if not before or before[-1][0] != plan[lo][0][0]:
            break
        lo -= 1
        plan[lo] = before
    results = [tile_cache.read_chunk(cache, plan[c]) for c in sorted(plan) if c < newly.stop]
    after = {name for name, _ in plan.get(newly.stop, [])}
    per_frame = pipeline.gather_detections([r for r in results if r])
    scale = json.loads(v["info"]).get("scale", 1.0) if v.get("info") else 1.0
    whole = len(pipeline.frame_tiles(width, height, settings, scale))
    ready = {n: t for n, t in per_frame.items() if n not in after and len(t) == whole}
    if ready:
        pipeline.label_early(video_dir, width, height, ready, settings, _statics(batch_id))


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
