"""Steering batches through the real fleet: cancel stops them cleanly, retry finishes them with the
labels of a clean run, and a small batch submitted behind a big one is not made to wait for it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import pytest

from workers import asset_cache

from support.fleet import CVFLEET, ROOT, cvfleet, wait_for

pytestmark = pytest.mark.fleet

CLIP = ["--every", "2", "--max-frames", "40"]  # 40 frames x 7 tiles per video


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("steer-videos")
    source = asset_cache.ensure("vtest.avi")
    for name in ("a.avi", "b.avi"):
        shutil.copy(source, d / name)
    return [d / "a.avi", d / "b.avi"]


@pytest.fixture(scope="module")
def clean_labels(videos, tmp_path_factory) -> dict:
    """Label bytes of one clean single-process run of the clip (both videos are the same clip)."""
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    out = tmp_path_factory.mktemp("clean")
    settings = AnnotateSettings(every=2, max_frames=40, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    annotate_video(videos[0], out, settings)
    return label_bytes(out / "a")


def label_bytes(video_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted((video_dir / "labels").glob("*.txt"))}


def progress(batch_id):
    from tasks import batch_store

    return batch_store.progress(batch_id)


def submit(paths, out, *options) -> str:
    run = cvfleet("annotate", *map(str, paths), "--out", str(out), "--no-wait", *options)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def tiles_done(info) -> int:
    return sum(v.tiles_done for v in info.videos)


def queues_idle() -> bool:
    from tasks.store import client

    r = client()
    return r.llen("video") == 0 and r.llen("detect") == 0 and r.hlen("unacked") == 0


@pytest.fixture(scope="module")
def cancelled(fleet, videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("steer-out")
    batch_id = submit(videos, out, *CLIP)
    wait_for(lambda: tiles_done(progress(batch_id)) >= 40, 180, what="first tiles")  # of either video
    run = cvfleet("batch", "cancel", batch_id)
    return batch_id, out, run


def test_cancel_mid_batch_empties_the_queues_and_ends_every_video_cancelled(cancelled):
    batch_id, out, run = cancelled
    assert run.returncode == 0, run.stderr
    assert f"batch {batch_id} cancelled: 2 video(s) stopped" in run.stderr
    wait_for(queues_idle, 60, what="empty queues")  # revoked messages discarded, running chunks ended
    info = progress(batch_id)
    assert info.finished and info.batch.cancelled
    assert [v.state for v in info.videos] == ["cancelled", "cancelled"]
    assert 40 <= tiles_done(info) < sum(v.tiles for v in info.videos)
    from tasks.smoke import square

    later = [square.apply_async((0,), queue=q) for q in ("video", "detect")]  # behind anything still queued
    wait_for(lambda: all(r.ready() for r in later), 60, what="a task run on each queue after the cancel")
    assert progress(batch_id).videos == info.videos  # nothing went on running after the cancel
    assert queues_idle()
    show = cvfleet("batch", "show", batch_id)
    assert show.returncode == 1
    assert f"batch {batch_id} cancelled: 0 of 2 video(s) ok" in show.stdout
    assert show.stdout.count("  cancelled ") == 2


def test_cancel_leaves_only_whole_files_and_no_annotation_json(cancelled, clean_labels):
    _, out, _ = cancelled
    labelled = 0
    for name in ("a", "b"):
        d = out / name
        assert not (d / "annotation.json").exists()
        early = label_bytes(d)  # frames whose tiles were all detected got their labels at once
        assert all(clean_labels[f] == data for f, data in early.items()), name
        labelled += len(early)
        assert list(d.rglob("*.tmp")) == []
        for jpg in (d / "images").glob("*.jpg") if (d / "images").exists() else []:
            assert cv2.imread(str(jpg)) is not None, f"{jpg} is not a whole JPEG"
        for kept in (d / ".tiles").rglob("*.json") if (d / ".tiles").exists() else []:
            assert set(json.loads(kept.read_text())) == {"jobs", "boxes"}
    assert labelled > 0  # 40 tiles done before the cancel: at least one frame whole


def test_retry_after_cancel_reuses_detections_and_gives_the_labels_of_a_clean_run(cancelled, clean_labels):
    batch_id, out, _ = cancelled
    before = tiles_done(progress(batch_id))
    run = cvfleet("batch", "retry", batch_id, timeout=600)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "2 video(s) queued again" in run.stderr
    assert f"batch {batch_id} finished: 2 of 2 video(s) ok" in run.stdout
    videos = progress(batch_id).videos
    assert [v.run for v in videos] == [2, 2]
    assert sum(v.tiles_reused for v in videos) >= before  # only the tiles still missing ran YOLO
    for name in ("a", "b"):
        assert label_bytes(out / name) == clean_labels, name
        assert not (out / name / ".tiles").exists()
    again = cvfleet("batch", "retry", batch_id, "--no-wait")
    assert again.returncode == 0 and "0 video(s) queued again" in again.stderr  # done videos stay done


def test_a_second_ctrl_c_in_annotate_asks_and_cancels_the_batch(fleet, videos, tmp_path):
    client = subprocess.Popen(
        [*CVFLEET, "annotate", str(videos[0]), "--out", str(tmp_path), "--every", "2", "--max-frames", "60"],
        cwd=ROOT,
        env=dict(os.environ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = client.stderr.readline()
    batch_id = first.split()[1].rstrip(":")
    wait_for(lambda: progress(batch_id).videos[0].state == "detecting", 120, what="detecting")
    client.send_signal(signal.SIGINT)
    while "Ctrl-C again" not in (line := client.stderr.readline()):
        assert line, "the client ended without offering to cancel"
    client.send_signal(signal.SIGINT)
    _, err = client.communicate("y\n", timeout=60)
    assert client.returncode == 130, err
    assert f"cancel batch {batch_id}?" in err and f"batch {batch_id} cancelled" in err
    assert progress(batch_id).videos[0].state == "cancelled"
    wait_for(queues_idle, 60, what="empty queues")


def test_a_small_batch_behind_a_big_one_is_done_long_before_it(fleet, videos, tmp_path):
    big = submit([videos[0]], tmp_path / "big", "--every", "1", "--max-frames", "240")  # 1,680 tiles
    wait_for(lambda: progress(big).videos[0].tiles_done >= 20, 180, what="big batch detecting")
    submitted = time.monotonic()
    small = submit([videos[1]], tmp_path / "small", "--every", "10", "--max-frames", "10")  # 70 tiles
    info = wait_for(lambda: (p := progress(small)).finished and p, 120, what="small batch end")
    took = time.monotonic() - submitted
    big_info = progress(big)
    big_video = big_info.videos[0]
    cvfleet("batch", "cancel", big)
    wait_for(queues_idle, 60, what="empty queues")
    assert info.videos[0].state == "done"
    assert not big_info.finished and big_video.tiles_done <= 0.8 * big_video.tiles, big_video
    print(f"small batch behind big: done {took:.1f} s; big batch at {big_video.tiles_done}/{big_video.tiles}")
    assert took < 90  # fair share: a few chunks' wait, not the big batch's minutes
