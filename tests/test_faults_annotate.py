"""Faults during an annotation batch: a killed worker process, a Redis restart, a client that
goes away, a full disk. Each costs time, never data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import pytest

from workers import asset_cache

from support.fleet import CVFLEET, ROOT, cvfleet, fleet_state, pool_children, restart_redis, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.faults]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fault-videos")
    shutil.copy(asset_cache.ensure("vtest.avi"), d / "vtest.avi")
    return d / "vtest.avi"


def submit(video, out, *options) -> str:
    run = cvfleet("annotate", str(video), "--out", str(out), "--no-wait", *options)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def progress(batch_id):
    from tasks import batch_store

    return batch_store.progress(batch_id)


def assert_complete_labels(video_dir: Path, frames: int) -> None:
    """Every frame has exactly its label file, complete, with no line twice; no temp file left."""
    images = sorted(p.stem for p in (video_dir / "images").glob("*.jpg"))
    labels = sorted(p.stem for p in (video_dir / "labels").glob("*.txt"))
    assert images == labels == [f"{i:06d}" for i in range(1, frames + 1)]
    for path in (video_dir / "labels").glob("*.txt"):
        lines = path.read_text().splitlines()
        assert len(lines) == len(set(lines)), f"{path.name} has a line twice"
        assert all(len(line.split()) == 5 for line in lines)
    assert list(video_dir.rglob("*.tmp")) == []


def test_a_pool_process_killed_mid_batch_loses_nothing(fleet, video, tmp_path):
    batch_id = submit(video, tmp_path, "--every", "2", "--max-frames", "40")
    wait_for(lambda: progress(batch_id).videos[0].tiles_done >= 12, 120, what="first tiles")
    victims = pool_children(fleet_state(fleet)["pids"]["worker"])
    assert victims
    os.kill(victims[0], signal.SIGKILL)
    info = wait_for(lambda: (p := progress(batch_id)).finished and p, 300, what="batch end")
    v = info.videos[0]
    assert v.state == "done", v.error
    assert v.tiles_done == v.tiles == 40 * 7  # 6 tiles and the full-frame pass per frame
    assert_complete_labels(tmp_path / "vtest", 40)


def test_a_redis_restart_mid_batch_is_survived_by_workers_and_the_client(fleet, video, tmp_path):
    batch_id = submit(video, tmp_path, "--every", "2", "--max-frames", "40")
    follower = subprocess.Popen(
        [*CVFLEET, "batch", "show", batch_id],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: progress(batch_id).videos[0].tiles_done >= 12, 120, what="first tiles")
    restart_redis(fleet)
    out, err = follower.communicate(timeout=400)
    assert follower.returncode == 0, err[-2000:]
    assert f"batch {batch_id} finished: 1 of 1 video(s) ok" in out
    assert_complete_labels(tmp_path / "vtest", 40)


def test_ctrl_c_on_the_client_leaves_the_batch_running(fleet, video, tmp_path):
    client = subprocess.Popen(
        [*CVFLEET, "annotate", str(video), "--out", str(tmp_path), "--every", "3", "--max-frames", "20"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = client.stderr.readline()
    assert first.startswith("batch "), first
    batch_id = first.split()[1].rstrip(":")
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 130, err
    assert f"cvfleet batch show {batch_id}" in err
    show = cvfleet("batch", "show", batch_id)
    assert show.returncode == 0, show.stderr
    assert f"batch {batch_id} finished: 1 of 1 video(s) ok" in show.stdout
    assert_complete_labels(tmp_path / "vtest", 20)


@pytest.fixture
def small_disk(tmp_path, video):
    """A tmpfs just big enough for the extracted frames, not for their labels too."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    probe = tmp_path / "probe"
    from vision.frames import extract_frames

    extract_frames(video, probe, every=10, max_frames=12)
    pages = sum(-(-p.stat().st_size // 4096) for p in probe.rglob("*") if p.is_file())
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={(pages + 4) * 4}k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_video_with_a_clear_reason_and_no_half_file(fleet, video, small_disk):
    run = cvfleet("annotate", str(video), "--out", str(small_disk), "--every", "10", "--max-frames", "12")
    assert run.returncode == 1
    failed = [line for line in run.stdout.splitlines() if "FAILED vtest.avi:" in line]
    assert len(failed) == 1 and "No space left on device" in failed[0]
    d = small_disk / "vtest"
    for jpg in (d / "images").glob("*.jpg"):
        assert cv2.imread(str(jpg)) is not None, f"{jpg.name} is not a whole JPEG"
    for txt in (d / "labels").glob("*.txt") if (d / "labels").exists() else []:
        text = txt.read_text()
        assert text == "" or text.endswith("\n"), f"{txt.name} is half written"
    assert list(d.rglob("*.tmp")) == []
    assert not (d / "annotation.json").exists()  # the video is not marked complete


def test_an_unwritable_output_fails_the_video_with_a_clear_reason(fleet, video, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be\n")
    run = cvfleet("annotate", str(video), "--out", str(blocker / "dataset"), "--every", "50", "--max-frames", "2")
    assert run.returncode == 1
    failed = [line for line in run.stdout.splitlines() if "FAILED vtest.avi:" in line]
    assert len(failed) == 1 and "Not a directory" in failed[0]
    assert blocker.read_text() == "a file where the output directory should be\n"
