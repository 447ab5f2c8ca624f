"""--runtime onnxruntime through the real fleet: same bytes as one process on that runtime, the same
objects as OpenCV, its own fingerprint, and a one-line refusal where the packages are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vision.boxes import overlap_with
from workers import asset_cache

from support.fleet import ROOT, cvfleet

pytestmark = pytest.mark.fleet

CLIP = ["--every", "25", "--max-frames", "5", "--tiles-per-task", "4"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    shutil.copy(asset_cache.ensure("vtest.avi"), d / "vtest.avi")
    return d


@pytest.fixture(scope="module")
def onnx_run(fleet, videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-out")
    run = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--runtime", "onnxruntime", *CLIP)
    assert run.returncode == 0, run.stderr + run.stdout
    return out, run


def single_process(videos, out, runtime):
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    settings = AnnotateSettings(
        every=25, max_frames=5, runtime=runtime, model=ModelSpec(**asset_cache.yolov3_tiny_files())
    )
    return annotate_video(videos / "vtest.avi", out, settings)


def read_labels(path: Path) -> list:
    """(class, corners in 768x576 pixels) per line of a YOLO label file."""
    rows = []
    for line in path.read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        cx, cy, w, h = float(cx) * 768, float(cy) * 576, float(w) * 768, float(h) * 576
        rows.append((int(cls), np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])))
    return rows


def test_fleet_labels_on_onnxruntime_equal_a_single_process_run_on_it(onnx_run, videos, tmp_path):
    out, run = onnx_run
    summary = single_process(videos, tmp_path, "onnxruntime")
    names = sorted(p.name for p in (out / "vtest" / "labels").iterdir())
    assert names == [f"{i:06d}.txt" for i in range(1, 6)]
    for name in names:
        assert (out / "vtest" / "labels" / name).read_bytes() == (tmp_path / "vtest" / "labels" / name).read_bytes()
    assert summary["counts"]["person"] >= 5 and "person" in run.stdout


def test_onnxruntime_labels_hold_the_same_objects_as_opencv(onnx_run, videos, tmp_path):
    out, _ = onnx_run
    single_process(videos, tmp_path, "opencv")
    matched = 0
    for path in sorted((out / "vtest" / "labels").iterdir()):
        ours, theirs = read_labels(path), read_labels(tmp_path / "vtest" / "labels" / path.name)
        assert len(ours) == len(theirs), path.name
        for cls in {c for c, _ in ours}:
            a = [box for c, box in ours if c == cls]
            b = np.array([box for c, box in theirs if c == cls]).reshape(-1, 4)
            ious = np.stack([overlap_with(box, b) for box in a])
            rows, cols = linear_sum_assignment(ious, maximize=True)
            assert len(rows) == len(a) == len(b) and (ious[rows, cols] > 0.9).all(), (path.name, cls)
            matched += len(rows)
    assert matched >= 25


def test_the_runtime_is_part_of_the_fingerprint_so_switching_it_detects_again(onnx_run, videos, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(onnx_run[0], out)
    same = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--runtime", "onnxruntime", *CLIP)
    assert same.returncode == 0 and "(reused)" in same.stdout, same.stderr
    other = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--runtime", "opencv", *CLIP)
    assert other.returncode == 0, other.stderr
    assert "(reused)" not in other.stdout and "re-merged" not in other.stdout


def test_without_the_packages_the_cli_says_so_in_one_line_and_queues_nothing(fleet, videos, tmp_path):
    from tasks.store import client, key

    before = client().zcard(key("batches"))
    code = "import sys; sys.modules['onnxruntime'] = None\nfrom workers.cli import main\nmain()"
    args = ["annotate", str(videos / "vtest.avi"), "--out", str(tmp_path), "--runtime", "onnxruntime"]
    run = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        "cvfleet: --runtime onnxruntime needs the onnx and onnxruntime packages: "
        "pip install onnx onnxruntime, or give --runtime opencv"
    ]
    assert client().zcard(key("batches")) == before
