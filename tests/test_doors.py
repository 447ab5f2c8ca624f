"""The fleet's doors: tasks stay inside their roots, secrets stay out of logs and output."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.fleet import cvfleet, fleet_environ, free_port, wait_for

pytestmark = pytest.mark.fleet


def record_batch(tmp_path, video: str, video_dir: str) -> str:
    from tasks import batch_store
    from vision.settings import AnnotateSettings
    from workers import asset_cache

    settings = AnnotateSettings(model=asset_cache.yolov3_tiny_files())
    return batch_store.create_batch(
        [video],
        [video_dir],
        str(tmp_path),
        settings.to_json(),
        None,
        False,
        None,
        [str(tmp_path), str(asset_cache.ensure("yolov3-tiny"))],
    )


def final_state(batch_id):
    from tasks import batch_store

    return wait_for(
        lambda: (v := batch_store.video(batch_id, 0)).state in ("done", "failed") and v,
        60,
        what="video end",
    )


@pytest.mark.parametrize("video", ["/etc/passwd", "{tmp}/../../../../etc/passwd", "{tmp}/link-to-etc/passwd"])
def test_a_task_asking_to_read_outside_its_roots_fails(fleet, tmp_path, video):
    from tasks.annotate.steps import prepare

    (tmp_path / "link-to-etc").symlink_to("/etc")
    batch_id = record_batch(tmp_path, video.format(tmp=tmp_path), str(tmp_path / "out" / "passwd"))
    prepare.delay(batch_id=batch_id, index=0, run=1)
    v = final_state(batch_id)
    assert v.state == "failed" and "outside the allowed roots" in v.error
    assert not (tmp_path / "out").exists()


def test_a_task_asking_to_write_outside_its_roots_fails(fleet, tmp_path):
    from tasks.annotate.steps import prepare
    from workers import asset_cache

    target = Path("/var/tmp") / f"cvfleet-door-{free_port()}"
    batch_id = record_batch(tmp_path, str(asset_cache.ensure("vtest.avi")), str(target))
    prepare.delay(batch_id=batch_id, index=0, run=1)
    v = final_state(batch_id)
    assert v.state == "failed" and "outside the allowed roots" in v.error
    assert not target.exists()


def test_a_detect_task_pointed_outside_its_roots_returns_an_error(fleet, tmp_path):
    from tasks.annotate.steps import detect

    batch_id = record_batch(tmp_path, str(tmp_path / "v.avi"), str(tmp_path / "out"))
    result = detect.apply_async(
        kwargs={
            "batch_id": batch_id,
            "index": 0,
            "run": 1,
            "chunk": 0,
            "video_dir": "/etc",
            "cache": "",
            "jobs": [["passwd", [0, 0, 10, 10]]],
        },
        ignore_result=False,
    ).get(timeout=60)
    assert "outside the allowed roots" in result["error"]


def test_the_flower_password_appears_in_no_log(fleet, flower_auth):
    cvfleet("smoke", "--tasks", "2")
    logs = [p for p in Path(fleet.fleet_dir).iterdir() if p.suffix in (".log", ".out")]
    assert {p.name for p in logs} >= {"worker.log", "flower.log", "redis.log"}
    for log in logs:
        assert flower_auth[1] not in log.read_text(errors="replace"), log.name


def test_a_redis_password_is_not_echoed_in_errors(tmp_path):
    env = fleet_environ(tmp_path)
    env["CVFLEET_REDIS_URL"] = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    result = cvfleet("status", env=env)
    assert result.returncode != 0
    assert "hunter2" not in result.stdout + result.stderr
