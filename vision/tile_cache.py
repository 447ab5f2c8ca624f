"""Each detect task's boxes kept on disk until the video's labels are written.

A finished chunk writes its result (`pipeline.detect_jobs`: {frame: [[tile, boxes], ...]}) to
`<video dir>/.tiles/<key>/<chunk hash>.json`, atomically, before it reports to Redis. So a result
is never lost with a message or a Redis outage; a chunk sent twice finds its file and runs no YOLO;
a cancelled or failed video is retried from the tiles still missing; and the label step reads every
frame's boxes from here, not from a message. The key is the video's checksum and the detection
fingerprint, so a change of model, thresholds, sampling or tiling never reuses stale boxes. The
directory goes once annotation.json is written (detections.jsonl keeps the same raw boxes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .errors import VisionError
from .files import write_text_atomic

CACHE_DIR = ".tiles"


def cache_dir(video_dir, video_meta: dict, detection_fingerprint: str) -> Path:
    """Where this video's chunk results go, for these frames and detection settings."""
    key = hashlib.sha256(f"{video_meta['sha256']}:{detection_fingerprint}".encode()).hexdigest()[:16]
    return Path(video_dir) / CACHE_DIR / key


def chunk_path(cache, jobs) -> Path:
    """A chunk's file, named by its jobs: the same jobs write the same file, whichever task runs them."""
    digest = hashlib.sha256(json.dumps(jobs, separators=(",", ":")).encode()).hexdigest()[:24]
    return Path(cache) / f"{digest}.json"


def write_chunk(cache, jobs, boxes: dict) -> Path:
    """Keep a chunk's result (`detect_jobs` output for `jobs`)."""
    return write_text_atomic(chunk_path(cache, jobs), json.dumps({"jobs": jobs, "boxes": boxes}) + "\n")


def read_chunk(cache, jobs) -> dict | None:
    """A kept result for exactly these jobs, or None."""
    try:
        return json.loads(chunk_path(cache, jobs).read_text(encoding="utf-8"))["boxes"]
    except (OSError, ValueError, KeyError):
        return None


def kept_tiles(cache) -> dict:
    """{(frame name, (x, y, w, h)): [frame, [tile, boxes]]} over every readable kept chunk."""
    kept = {}
    for path in sorted(Path(cache).glob("*.json")) if Path(cache).is_dir() else []:
        try:
            boxes = json.loads(path.read_text(encoding="utf-8"))["boxes"]
        except (OSError, ValueError, KeyError):
            continue  # a file that cannot be read is a chunk to run again
        for name, tiles in boxes.items():
            for tile, tile_boxes in tiles:
                kept[(name, tuple(tile))] = [tile, tile_boxes]
    return kept


def missing_jobs(cache, jobs) -> list:
    """The jobs (in order) whose tile has no kept result."""
    kept = kept_tiles(cache)
    return [job for job in jobs if (job[0], tuple(job[1])) not in kept]


def gathered(cache, jobs) -> dict:
    """One `detect_jobs`-shaped result holding every job's tile once; VisionError if one is missing
    (workers that do not share the storage root, or a cache deleted under a running video)."""
    kept = kept_tiles(cache)
    result = {}
    for name, tile in jobs:
        entry = kept.get((name, tuple(tile)))
        if entry is None:
            raise VisionError(
                f"no detections kept for frame {name} tile {list(tile)} in {cache}: "
                "every worker must see the same storage root (CVFLEET_DATA)"
            )
        result.setdefault(name, []).append(entry)
    return result


def drop(video_dir) -> None:
    """Remove every kept chunk of the video (after annotation.json is written)."""
    shutil.rmtree(Path(video_dir) / CACHE_DIR, ignore_errors=True)
