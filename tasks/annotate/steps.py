"""The annotation job's Celery tasks: prepare, extract, detect and label, each over `vision.pipeline`
steps and each a declared transition of the video's record (`tasks.batch_records`).

Every task names the video's run (batch id, index, run) and checks it first (`VideoTask`): a task
of a cancelled batch, of a video that ended, or of a run before a retry does nothing. No task keeps
a Celery result: the batch record in Redis is the result.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from tasks import batch_store
from tasks.annotate import context, dispatch
from tasks.annotate.planner import FramePlanner, Gone, chunks_of, segment_count_for, source_span
from tasks.annotate.report import boxes_home, reported
from tasks.base import ItemTask
from tasks.batch_records import ChunkRef, VideoRecord, VideoRun
from tasks.roots import OutsideRoots
from vision import pipeline, tile_cache
from vision.detector import get_detector
from vision.errors import VisionError
from vision.frames import (
    extract_segment,
    frames_before,
    join_segments,
    probe,
    read_video_meta,
    reusable_meta,
    sampling_settings,
    segment_bounds,
    write_meta,
)
from vision.motion import STILL_NAME, write_still
from vision.settings import AnnotateSettings
from workers.app import app

log = logging.getLogger(__name__)

REDIS_DOWN = (ConnectionError, TimeoutError, BusyLoadingError)


class VideoTask(ItemTask):
    """A task of one video run: its failures fail that video alone; it runs only while its batch is
    not cancelled and its run has not ended."""

    abstract = True
    expected = (VisionError, OutsideRoots, OSError, SoftTimeLimitExceeded)
    item = "video"
    limit_hint = "use fewer tiles per task"

    def item_exists(self, batch_id: str, index: int, run: int, **_) -> bool:
        return context.recorded(batch_id) and batch_store.gate(VideoRun(batch_id, index, run))

    def fail_item(self, reason: str, task_id: str, batch_id: str, index: int, run: int, **_) -> None:
        batch_store.fail(VideoRun(batch_id, index, run), reason)

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

    def item_exists(self, batch_id: str, index: int, run: int, **_) -> bool:
        if not context.recorded(batch_id):
            return True  # a chunk of a deleted batch reports that as its error
        return batch_store.gate(VideoRun(batch_id, index, run))

    def on_expected(self, reason: str, **ids) -> dict:
        if context.recorded(ids["batch_id"]):
            self.fail_item(reason, self.request.id, **ids)
        return {"error": reason}

    def __call__(self, *args, **ids):
        """A chunk that did not finish (its video failed or ended, or the batch was cancelled) leaves
        flight at once, and its batch's next chunk goes out in its place."""
        result = super().__call__(*args, **ids)
        if "error" in result or result.get("state") == "gone":
            batch_store.chunk_dropped(VideoRun(ids["batch_id"], ids["index"], ids["run"]).chunk(ids["chunk"]))
            dispatch.feed()
        return result


def _done(run: VideoRun, video_dir: Path, settings: AnnotateSettings, summary: dict, **fields) -> dict:
    if context.batch(run.batch).preview:
        pipeline.write_video_previews(video_dir, settings)
    batch_store.finish(run, summary, **fields)
    tile_cache.drop(video_dir)  # detections.jsonl keeps the same raw boxes
    return {"state": "done", "boxes": summary["boxes"]}


@app.task(name=dispatch.PREPARE, bind=True, ignore_result=True, base=VideoTask)
def prepare(self, *, batch_id: str, index: int, run: int) -> dict:
    """queued -> extracting: reuse what is on disk (-> labelling -> done), or plan the whole video's
    chunks from frames already extracted (-> detecting), or start streaming it (-> detecting, with
    `extract` tasks that plan chunks as frames land)."""
    vr = VideoRun(batch_id, index, run)
    settings = context.settings(batch_id)
    v = context.record(vr)
    video_dir, video = context.inside(batch_id, v.video_dir), Path(v.video)
    video = context.inside(batch_id, video) if video.exists() else video
    for path in settings.model.files():
        context.inside(batch_id, path)
    statics = context.statics(batch_id)
    if not batch_store.move(vr, "extract"):
        return {"state": "skipped"}  # a copy of this prepare got further, or the video ended
    info = probe(video)
    info["scale"] = pipeline.video_scale(video, info)  # vision/content_scale.py
    sampling = sampling_settings(**settings.sampling())
    meta = reusable_meta(video_dir, info, sampling)
    if meta is None:
        return _stream(vr, v, video, video_dir, settings, info, sampling)
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
        video_dir, meta, settings, statics, labelling=lambda: batch_store.move(vr, "relabel", **fields)
    )
    if summary is not None:
        return _done(vr, video_dir, settings, summary, **fields)
    get_detector(settings.detector_spec())  # a model that does not load fails here, once
    _, jobs = pipeline.detect_plan(video_dir, meta, settings)
    fields["tiles"] = len(jobs)  # with --skip-still, only the tiles that go through YOLO
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    todo = tile_cache.missing_jobs(cache, jobs)  # a retry reuses every tile already detected
    chunks, ms_tile = chunks_of(vr, todo, video_dir, settings) if todo else ([], 0.0)
    fields.update(tiles_reused=len(jobs) - len(todo), cache=str(cache))
    if ms_tile:
        fields["ms_per_tile"] = round(ms_tile, 1)
    if not batch_store.start_detecting(vr, chunks, **fields):
        return {"state": "skipped"}
    if not chunks:
        batch_store.label_sent(vr)
        dispatch.send_label(vr)
    else:
        dispatch.feed()
    return {"state": "detecting", "frames": len(meta["frames"]), "tiles": len(jobs), "chunks": len(chunks)}


def _stream(
    vr: VideoRun, v: VideoRecord, video: Path, video_dir: Path, settings: AnnotateSettings, info: dict, sampling
) -> dict:
    """Cut the video into extraction segments and send one `extract` per segment."""
    get_detector(settings.detector_spec())  # a model that does not load fails here, once
    expected = frames_before(info["frame_count"], info["fps"], sampling) if info["frame_count"] > 0 else 0
    if sampling["max_frames"]:
        expected = min(expected, sampling["max_frames"])
    per_frame = 0
    if info["width"] > 0:
        per_frame = len(pipeline.frame_tiles(info["width"], info["height"], settings, info["scale"]))
    n = segment_count_for(video, v, settings, expected, per_frame)
    bounds = segment_bounds(info["frame_count"] if n == 1 else source_span(info, sampling), n)
    cache = tile_cache.cache_dir(video_dir, info, settings.fingerprint("detection"))
    fields = {"frames": expected, "cache": str(cache), "info": info, "bounds": bounds}
    if per_frame:
        fields.update(width=info["width"], height=info["height"], tiles=per_frame * expected)
    if not batch_store.start_streaming(vr, len(bounds), **fields):
        return {"state": "skipped"}
    for segment in range(len(bounds)):
        dispatch.send_extract(vr, segment)
    return {"state": "detecting", "segments": len(bounds)}


@app.task(name=dispatch.EXTRACT, bind=True, ignore_result=True, base=VideoTask)
def extract(self, *, batch_id: str, index: int, run: int, segment: int) -> dict:
    """Extract one segment of a streaming video; each frame's tiles are queued for detection as soon
    as it is on disk. The last segment to finish joins them (exact seeks checked) and closes the plan."""
    vr = VideoRun(batch_id, index, run)
    settings = context.settings(batch_id)
    v = context.record(vr)
    video_dir, video = context.inside(batch_id, v.video_dir), context.inside(batch_id, v.video)
    if not v.streaming:
        return {"state": "skipped"}
    sampling = sampling_settings(**settings.sampling())
    planner = FramePlanner(vr, video_dir, settings, v)
    start, stop = v.bounds[segment]
    try:
        part = extract_segment(video, video_dir, v.info, sampling, start, stop, on_frame=planner.frame)
        planner.flush()
    except Gone:
        return {"state": "gone"}
    if planner.still_planner is not None:
        write_still(video_dir, planner.still)
    if batch_store.segment_done(vr, segment, {**part, "gated": planner.gated}):
        _close(vr, video_dir, settings, v.info, sampling)
    return {"state": "extracted", "segment": segment, "frames": len(part["names"])}


def _close(vr: VideoRun, video_dir: Path, settings: AnnotateSettings, info: dict, sampling: dict) -> None:
    """Every segment is extracted: write video.json as one pass would have, and close the plan (the
    label goes out now if every chunk is already done). A seek that was not exact (the frame after a
    segment is not the next segment's first) starts the video again as one segment."""
    parts = batch_store.segments(vr)
    ordered = [parts[k] for k in sorted(parts)]
    meta = join_segments(info, sampling, ordered)
    if meta is None:
        log.warning("%s: seeking was not exact; extracting it again in one pass", vr)
        tile_cache.drop(video_dir)
        new = batch_store.restart(vr, single_pass=1)
        if new:
            dispatch.send_prepare(new)
        return
    warning = pipeline.decode_warning(meta, settings)  # strict: raises, the video fails
    write_meta(video_dir, meta)
    if settings.skip_still is None:
        (video_dir / STILL_NAME).unlink(missing_ok=True)
        tiles = len(pipeline.plan_tiles(meta, settings)) * len(meta["frames"])
    else:  # one segment: its count of the tiles that go through YOLO
        tiles = ordered[0]["gated"]
    fields = {"frames": len(meta["frames"]), "tiles": tiles, "width": meta["width"], "height": meta["height"]}
    if warning:
        fields["warning"] = warning
    if batch_store.close_plan(vr, **fields):
        dispatch.send_label(vr)


@app.task(name=dispatch.DETECT, bind=True, ignore_result=True, base=ChunkTask)
def detect(
    self,
    *,
    batch_id: str,
    index: int,
    run: int,
    chunk: int,
    video_dir: str,
    jobs: list,
    cache: str,
    frames: dict | None = None,
) -> dict:
    """YOLO on a chunk of [frame name, [x, y, w, h]] jobs, then `report.reported`. With `frames`
    ({name: content key}) the frames come from Redis and the boxes go back through it: this host
    needs nothing but the Redis URL. Else they are read from, and kept in, the video's folder (every
    worker sees the storage root); a chunk whose boxes are already kept runs no YOLO."""
    ref = ChunkRef(VideoRun(batch_id, index, run), chunk)
    batch_store.chunk_started(ref)
    detector = get_detector(context.settings(batch_id).detector_spec())
    if frames is not None:
        boxes = pipeline.detect_jobs(None, jobs, detector, lambda name: frame_from_redis(name, frames[name]))
        reported(ref, len(jobs), boxes, sorted(set(frames.values())))
    else:
        video_dir = context.inside(batch_id, video_dir)
        kept = context.inside(batch_id, cache) if cache else None
        boxes = tile_cache.read_chunk(kept, jobs) if kept else None
        if boxes is None:
            boxes = pipeline.detect_jobs(video_dir, jobs, detector)
            if kept:
                tile_cache.write_chunk(kept, jobs, boxes)
        reported(ref, len(jobs))
    return {"tiles": len(jobs), "boxes": sum(len(b) for tiles in boxes.values() for _, b in tiles)}


def frame_from_redis(name: str, sha: str):
    """Frame `name` decoded from its bytes in Redis; VisionError if its key expired before this read."""
    data = batch_store.frame(sha)
    if data is None:
        raise VisionError(
            f"frame {name} (content key {sha[:12]}) is no longer in Redis, it expired before a detect host "
            "read it; `cvfleet batch retry` sends it again"
        )
    return pipeline.decode_frame(data, name)


@app.task(name=dispatch.LABEL, bind=True, ignore_result=True, base=VideoTask)
def label(self, *, batch_id: str, index: int, run: int) -> dict:
    """detecting -> labelling -> done: merge every frame's boxes (read back from the tile cache),
    write the labels, finish the video."""
    vr = VideoRun(batch_id, index, run)
    settings = context.settings(batch_id)
    video_dir = context.inside(batch_id, context.record(vr).video_dir)
    if not batch_store.move(vr, "label"):
        return {"state": "skipped"}
    meta = read_video_meta(video_dir)
    if meta is None:
        raise VisionError(f"no readable video.json in {video_dir} (removed while the video ran?); retry the batch")
    jobs = pipeline.planned_jobs(video_dir, meta, settings)
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    boxes_home(vr, cache)  # what detect hosts without this folder kept in Redis
    detections = pipeline.gather_detections([tile_cache.gathered(cache, jobs)])
    pipeline.merge_frames(video_dir, meta, pipeline.complete_detections(video_dir, detections), settings)
    summary = pipeline.finish_video(video_dir, meta, settings, context.statics(batch_id))
    return _done(vr, video_dir, settings, summary)
