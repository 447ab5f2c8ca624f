"""Video annotation as a Celery canvas over the `vision.pipeline` steps.

Per video:  prepare (queue video: extract frames, plan tiles)
              └─ chord( detect(chunk) × N  (queue detect: YOLO on tiles, boxes back as JSON) )
                   └─ label (queue video: merge per frame, write labels, classes, static, record)

`prepare` ends the video itself when nothing needs YOLO: the same run is already on disk, or only
static boxes or merge options changed (labels written again from detections.jsonl). A video whose header announces more
frames than decode is annotated as far as it decodes, done with a warning (unless --strict).

Messages carry a batch id, paths, frame names and tile coordinates, never pixels. A detect task
that fails returns its error instead of raising, so the chord always reaches `label`, which marks
the video failed with that one-line reason while the batch's other videos go on.

No task keeps a Celery result: the batch record in Redis is the result (a prepare result would
list every detect task id, thousands per video, for a week).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from celery import chord
from celery.exceptions import SoftTimeLimitExceeded

from tasks import batch_store
from tasks.base import ItemTask
from tasks.roots import OutsideRoots, resolve_inside
from vision import pipeline
from vision.detector import get_detector
from vision.errors import VisionError
from vision.frames import frame_size, read_video_meta
from vision.settings import AnnotateSettings
from vision.static import Statics, read_statics
from workers.app import app


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


def _settings(batch_id: str) -> AnnotateSettings:
    return AnnotateSettings.from_json(_batch(batch_id)["settings"])


def _video(batch_id: str, index: int) -> tuple[Path, Path]:
    v = batch_store.video(batch_id, index)
    if not v:
        raise VisionError(f"batch {batch_id} has no video {index}")
    return Path(v["video"]), resolve_inside(v["video_dir"], _batch(batch_id)["roots"])


def _statics(batch_id: str) -> Statics:
    info = _batch(batch_id)
    paths = [resolve_inside(info[k], info["roots"]) if info.get(k) else None for k in ("static", "static_ignore")]
    return read_statics(*paths)


def _done(batch_id: str, index: int, video_dir: Path, settings: AnnotateSettings, summary: dict, **fields) -> dict:
    if _batch(batch_id)["preview"]:
        pipeline.write_video_previews(video_dir, settings)
    batch_store.update_video(batch_id, index, state="done", summary=summary, **fields)
    return {"state": "done", "boxes": summary["boxes"]}


class VideoTask(ItemTask):
    """A task of one video of a batch: its failures fail that video alone."""

    abstract = True
    expected = (VisionError, OutsideRoots, OSError, SoftTimeLimitExceeded)
    item = "video"
    limit_hint = "use fewer tiles per task"

    def item_exists(self, batch_id: str, **_) -> bool:
        return _recorded(batch_id)

    def fail_item(self, reason: str, task_id: str, batch_id: str, index: int, **_) -> None:
        batch_store.fail_video(batch_id, index, reason)


class ChunkTask(VideoTask):
    """A detect chunk: its errors go back to the chord as {"error": reason}, and `label` fails the
    video with the first one; only a chunk lost past that (the hard time limit) fails it here."""

    abstract = True
    item = "chunk"

    def item_exists(self, **_) -> bool:
        return True  # a chunk of a deleted batch reports that as its error

    def on_expected(self, reason: str, **_) -> dict:
        return {"error": reason}


@app.task(name="cvfleet.video.prepare", bind=True, ignore_result=True, base=VideoTask)
def prepare(self, *, batch_id: str, index: int) -> dict:
    """Extract (or reuse) the frames, check the model loads, and fan the tiles out."""
    settings = _settings(batch_id)
    roots = _batch(batch_id)["roots"]
    video, video_dir = _video(batch_id, index)
    video = resolve_inside(video, roots) if video.exists() else video
    for path in (settings.model.cfg, settings.model.weights, settings.model.onnx, settings.model.names):
        if path:
            resolve_inside(path, roots)
    statics = _statics(batch_id)
    batch_store.update_video(batch_id, index, state="extracting")
    meta = pipeline.prepare_video(video, video_dir, settings)
    warning = pipeline.decode_warning(meta, settings)  # strict: raises, the video fails
    tiles = pipeline.plan_tiles(meta, settings)
    fields = {
        "frames": len(meta["frames"]),
        "tiles": len(tiles) * len(meta["frames"]),
        **({"warning": warning} if warning else {}),
    }
    if pipeline.relabelable(video_dir, meta, settings) or pipeline.remergeable(video_dir, meta, settings):
        batch_store.update_video(batch_id, index, state="labelling", **fields)
    summary = pipeline.reuse(video_dir, meta, settings, statics)
    if summary is not None:
        return _done(batch_id, index, video_dir, settings, summary, **fields)
    get_detector(settings.detector_spec())  # a model that does not load fails here, once
    tiles, jobs = pipeline.detect_plan(video_dir, meta, settings)
    fields["tiles"] = len(jobs)  # with --skip-still, only the tiles that go through YOLO
    chunks = pipeline.chunk_jobs(jobs, _batch(batch_id)["tiles_per_task"] or len(tiles))
    batch_store.update_video(batch_id, index, state="detecting", chunks=len(chunks), **fields)
    header = [
        detect.s(batch_id=batch_id, index=index, chunk=i, video_dir=str(video_dir), jobs=chunk)
        for i, chunk in enumerate(chunks)
    ]
    chord(header)(label.s(batch_id=batch_id, index=index))
    return {"state": "detecting", "frames": len(meta["frames"]), "tiles": len(jobs), "chunks": len(chunks)}


@app.task(name="cvfleet.detect.tiles", bind=True, ignore_result=True, base=ChunkTask)
def detect(self, *, batch_id: str, index: int, chunk: int, video_dir: str, jobs: list) -> dict:
    """YOLO on a chunk of [frame name, [x, y, w, h]] jobs: {"boxes": {frame: [box, ...]}} or {"error": why}.

    ignore_result: the chord still gets the return value (Redis backend, on_chord_part_return),
    but no `celery-task-meta-*` key is kept per chunk, so Redis memory does not grow with tiles.
    """
    video_dir = resolve_inside(video_dir, _batch(batch_id)["roots"])
    boxes = pipeline.detect_jobs(video_dir, jobs, get_detector(_settings(batch_id).detector_spec()))
    batch_store.chunk_done(batch_id, index, chunk, len(jobs))
    return {"boxes": boxes}


@app.task(name="cvfleet.video.label", bind=True, ignore_result=True, base=VideoTask)
def label(self, results: list, *, batch_id: str, index: int) -> dict:
    """Chord callback: merge every frame's boxes, write the labels and finish the video."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return self.on_expected(errors[0], batch_id=batch_id, index=index)
    settings = _settings(batch_id)
    _, video_dir = _video(batch_id, index)
    batch_store.update_video(batch_id, index, state="labelling")
    meta = read_video_meta(video_dir)
    per_frame = pipeline.complete_detections(video_dir, pipeline.gather_detections(r["boxes"] for r in results))
    pipeline.merge_frames(video_dir, meta, per_frame, settings)
    summary = pipeline.finish_video(video_dir, meta, settings, _statics(batch_id))
    return _done(batch_id, index, video_dir, settings, summary)


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
        prepare.apply_async(kwargs={"batch_id": batch_id, "index": i})
    return batch_id
