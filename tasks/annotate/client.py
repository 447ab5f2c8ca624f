"""The annotation job as a client sees it: submit a batch, cancel it, retry what failed.

Settings, tiling and the static files are checked here, before anything is queued; each video's
own problems (missing, not a video, truncated) are found by its task and fail it alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks import batch_store
from tasks.annotate import dispatch
from tasks.batch_records import VideoRun
from vision import pipeline
from vision.errors import VisionError
from vision.frames import frame_size
from vision.settings import AnnotateSettings
from vision.static import read_statics
from workers import config
from workers.app import app


def _absolute(path) -> str:
    return os.path.abspath(path)


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
    """Record a batch in Redis and queue one `prepare` per video; returns the batch id. The batch's
    roots (where its tasks may read and write) are the data and cache folders, the output, and the
    folders of its videos, model files and static files."""
    settings.validate()
    for video in videos:  # an absurd tiling is refused before anything is queued
        size = frame_size(video)
        if size:
            pipeline.frame_tiles(*size, settings)
    read_statics(static, static_ignore)
    if tiles_per_task is not None and tiles_per_task < 1:
        raise VisionError(f"--tiles-per-task must be at least 1, got {tiles_per_task}")
    out = Path(_absolute(out))
    videos = [Path(_absolute(v)) for v in videos]
    video_dirs = [pipeline.video_out_dir(out, v) for v in videos]
    seen = {}
    for v, d in zip(videos, video_dirs):
        if d in seen:
            raise VisionError(f"{seen[d].name} and {v} would both write to {d}; rename one of them")
        seen[d] = v
    cfg = config.load()
    statics = [p for p in (static, static_ignore) if p]
    roots = {str(cfg.data), str(cfg.cache), str(out), *map(str, extra_roots)}
    roots |= {str(v.parent) for v in videos}
    roots |= {str(Path(_absolute(p)).parent) for p in (*settings.model.files(), *statics)}
    batch_id = batch_store.create_batch(
        [str(v) for v in videos],
        [str(d) for d in video_dirs],
        str(out),
        settings.to_json(),
        _absolute(static) if static else None,
        preview,
        tiles_per_task,
        sorted(roots),
        _absolute(static_ignore) if static_ignore else None,
    )
    for i in range(len(videos)):
        dispatch.send_prepare(VideoRun(batch_id, i, 1))
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
    runs = batch_store.retry(batch_id)
    if runs is None:
        return None
    for run in runs:
        dispatch.send_prepare(run)
    return [run.index for run in runs]
