"""Annotation across hosts that share nothing but Redis (tests/support/hosts.py): the head's video
worker has the video and the output; each detect host sees none of it and gets its frames, and
sends its boxes back, through Redis. Root only; skipped elsewhere with the reason."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import redis

from workers import asset_cache

from support.fleet import cvfleet, wait_for
from support.hosts import lab

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

CLIP = ("--every", "10", "--max-frames", "12")


def labels(video_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((video_dir / "labels").glob("*.txt"))}


def one_process_labels(video, out) -> dict[str, bytes]:
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    settings = AnnotateSettings(every=10, max_frames=12, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    annotate_video(video, out, settings)
    return labels(out / video.stem)


QUICK = {"CVFLEET_STALL_SECONDS": "15", "CVFLEET_WATCHDOG_INTERVAL": "2", "CVFLEET_CHUNK_SECONDS": "0.5"}


def head_and_detect_hosts(net) -> tuple:
    """The head's video worker and a detect worker on each host, all up; (the head's copy of vtest,
    the labels one process writes for CLIP). The model is read at its path on every host; the rest
    of the head's files stay hidden."""
    video = net.head / "videos" / "vtest.avi"
    video.parent.mkdir(parents=True)
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    reference = one_process_labels(video, net.head.parent / "reference")
    head = net.worker(queues="video")
    hide = [p for p in net.hidden if p != net.cfg.cache]
    hosts = [host.worker(queues="detect", hide=hide) for host in net.hosts]
    net.wait_workers([head, *hosts])
    return video, reference


def detect_tasks_done(host) -> int:
    log = host.dir / "worker-detect.log"
    text = log.read_text() if log.exists() else ""
    return sum("cvfleet.detect.tiles" in line and "succeeded" in line for line in text.splitlines())


def submit_then_cut_the_first_host(net, video, out) -> str:
    """Submit the clip, and cut the first host's cable once it has done a detect task (it holds the
    next one then); the batch id."""
    run = cvfleet("annotate", str(video), "--out", str(out), *CLIP, "--no-wait", env=net.env, timeout=120)
    assert run.returncode == 0, run.stderr
    wait_for(lambda: detect_tasks_done(net.hosts[0]) >= 1, 300, what="a detect task done on the first host")
    net.hosts[0].cut()
    return run.stdout.strip()


def follow(net, batch_id: str) -> None:
    shown = cvfleet("batch", "show", batch_id, env=net.env, timeout=600)
    assert shown.returncode == 0, shown.stderr + shown.stdout
    assert f"batch {batch_id} finished: 1 of 1 video(s) ok" in shown.stdout


def test_a_head_and_two_detect_hosts_seeing_none_of_its_files_write_a_one_process_runs_labels(tmp_path):
    with lab(tmp_path, hosts=2) as net:
        video, reference = head_and_detect_hosts(net)
        run = cvfleet("annotate", str(video), "--out", str(net.head / "out"), *CLIP, env=net.env, timeout=600)
        assert run.returncode == 0, run.stderr + run.stdout
        assert labels(net.head / "out" / "vtest") == reference
        assert len(reference) == 12 and any(reference.values())
        for host in net.hosts:
            assert detect_tasks_done(host) >= 1, f"{host.name} ran no detect task"
        held = redis.Redis.from_url(net.redis_url).keys("cvfleet:frame:*")
        assert held == []  # every frame released once its chunks reported


def test_a_host_cut_mid_batch_for_good_leaves_the_batch_done_with_a_one_process_runs_labels(tmp_path):
    with lab(tmp_path, hosts=2, env=QUICK) as net:
        video, reference = head_and_detect_hosts(net)
        out = net.head / "out"
        follow(net, submit_then_cut_the_first_host(net, video, out))  # for good: its chunk is redone elsewhere
        assert labels(out / "vtest") == reference
        logs = [p.read_text() for d in (net.head, *(h.dir for h in net.hosts)) for p in d.glob("worker-*.log")]
        assert any("watchdog" in log and "sent again" in log for log in logs), "nothing the cut host held was redone"


def test_a_host_cut_for_a_minute_that_comes_back_writes_no_record_twice(tmp_path):
    with lab(tmp_path, hosts=2, env=QUICK) as net:
        video, reference = head_and_detect_hosts(net)
        out = net.head / "out"
        batch_id = submit_then_cut_the_first_host(net, video, out)
        cut_at = time.monotonic()
        wait_for(lambda: time.monotonic() - cut_at >= 60, 400, every=1, what="a minute without the first host")
        net.hosts[0].restore()  # it comes back with what it held, already redone elsewhere
        follow(net, batch_id)
        assert labels(out / "vtest") == reference
        records = [json.loads(line)["frame"] for line in (out / "vtest" / "detections.jsonl").read_text().splitlines()]
        assert len(records) == len(set(records)) == 12
        for data in labels(out / "vtest").values():
            assert len(data.splitlines()) == len(set(data.splitlines()))
