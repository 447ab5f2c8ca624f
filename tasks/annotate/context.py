"""What a task of a batch reads once per process: the batch's submission, its settings and static
boxes, the fleet's configuration, and the model's measured speed. The submission never changes, so
each is cached; a missing batch is not (it may be written a moment later by the submitter)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tasks import batch_store
from tasks.batch_records import BatchRecord, VideoRecord, VideoRun
from tasks.roots import resolve_inside
from vision.chunking import time_detector
from vision.detector import get_detector
from vision.errors import VisionError
from vision.settings import AnnotateSettings
from vision.static import Statics, read_statics
from workers import config


@functools.lru_cache(maxsize=64)
def batch(batch_id: str) -> BatchRecord:
    """The batch's submission, read once per process."""
    info = batch_store.batch(batch_id)
    if info is None:
        raise VisionError(f"batch {batch_id} has no record in Redis (expired or deleted)")
    return info


def recorded(batch_id: str) -> bool:
    """Whether the batch has a record (read through `batch`'s cache; a missing one is not cached)."""
    try:
        batch(batch_id)
    except VisionError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def cfg() -> config.Config:
    return config.load()


def settings(batch_id: str) -> AnnotateSettings:
    return AnnotateSettings.from_json(batch(batch_id).settings)


def inside(batch_id: str, path) -> Path:
    """`path` resolved, if it lies inside the batch's roots (else `OutsideRoots`)."""
    return resolve_inside(path, batch(batch_id).roots)


def record(run: VideoRun) -> VideoRecord:
    """The video's record; VisionError if the batch has no such video. Its `video_dir` is checked
    with `inside` where a task writes there; its `video` where a task opens it."""
    v = batch_store.video(run.batch, run.index)
    if v is None:
        raise VisionError(f"batch {run.batch} has no video {run.index}")
    return v


def statics(batch_id: str) -> Statics:
    info = batch(batch_id)
    return read_statics(*(inside(batch_id, p) if p else None for p in (info.static, info.static_ignore)))


@functools.lru_cache(maxsize=8)
def _timed(spec_key: str) -> float:
    return time_detector(get_detector(json.loads(spec_key)))


def ms_per_tile(settings: AnnotateSettings) -> float:
    """This process's measured speed of the settings' model (timed once per process and model)."""
    return _timed(json.dumps(settings.detector_spec(), sort_keys=True))


def fleet_processes() -> int:
    """Pool processes of the detect workers heard from lately (at least 1)."""
    return batch_store.processes(cfg().heartbeat_fresh)
