"""A task killed at its hard time limit (stuck in C code, where the soft limit cannot interrupt it)
fails its video with a reason; the batch ends instead of waiting for a chord that never calls back."""

from __future__ import annotations

import shutil

import pytest

from workers import asset_cache

from support.fleet import bare_workers, cvfleet

pytestmark = [pytest.mark.fleet, pytest.mark.faults]


def test_a_detect_task_killed_at_the_hard_time_limit_fails_its_video(tmp_path):
    video = tmp_path / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    # one 2560-px forward of yolov3-tiny takes 2-3 s in one C call: past a 1 s hard limit (which
    # leaves no soft limit to interrupt it first); extracting one frame takes 0.1 s
    with bare_workers(tmp_path, {"CVFLEET_TASK_TIME_LIMIT": "1", "CVFLEET_VISIBILITY_TIMEOUT": "60"}) as (env, _, _w):
        run = cvfleet(
            "annotate",
            str(video),
            "--out",
            str(tmp_path / "out"),
            "--max-frames",
            "1",
            "--input-size",
            "2560",
            "--full-frame",
            "--tiles-per-task",  # a fixed chunk size: no timing forward in `prepare`
            "1",
            env=env,
            timeout=120,
        )
        log = (tmp_path / "worker-a.log").read_text(errors="replace")
    assert run.returncode == 1, run.stderr
    failed = [line for line in run.stdout.splitlines() if "FAILED vtest.avi:" in line]
    assert len(failed) == 1 and "hard time limit" in failed[0]
    assert "Hard time limit (1s) exceeded for cvfleet.detect.tiles" in log


def test_a_trial_killed_at_the_hard_time_limit_is_recorded_failed(tmp_path):
    grid = tmp_path / "long.toml"
    grid.write_text('data = "mnist5k"\n[fixed]\nepochs = 50\n[sweep]\nlr = [0.05]\n')  # minutes of training
    with bare_workers(tmp_path, {"CVFLEET_TASK_TIME_LIMIT": "1", "CVFLEET_VISIBILITY_TIMEOUT": "60"}) as (env, _, _w):
        run = cvfleet("sweep", str(grid), "--no-prune", env=env, timeout=120)
        log = (tmp_path / "worker-a.log").read_text(errors="replace")
    assert run.returncode == 1, run.stderr
    assert "1 failed" in run.stdout and "hard time limit" in run.stdout
    assert "Hard time limit (1s) exceeded for cvfleet.train.trial" in log
