"""Redis SIGKILLed mid-batch and back only after every client gave up retrying: the batch still ends.

Seen before the watchdog: Redis killed while detect tasks were finishing, back ~7 minutes later
(past the clients' two minutes of retries); a finished chunk was stored as failed, the chord raised
ChordError('Dependency raised ConnectionError'), its callback never ran, and the batch stayed at
'detecting 770/840 tiles' forever. Here the retry and stall windows are seconds (the same code
with CVFLEET_REDIS_RETRY_SECONDS=2, CVFLEET_STALL_SECONDS=6), so the same outage takes 12 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
import redis

from workers import asset_cache

from support.fleet import bare_workers, cvfleet, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.faults]

OUTAGE = 12  # seconds Redis stays away: past the 2 s of client retries while chunks of 2-4 s finish
WINDOWS = {
    "CVFLEET_REDIS_RETRY_SECONDS": "2",
    "CVFLEET_STALL_SECONDS": "6",
    "CVFLEET_WATCHDOG_INTERVAL": "1",
    "CVFLEET_VISIBILITY_TIMEOUT": "120",  # kombu's own redelivery comes too late to be what saves it
}


def label_bytes(video_dir):
    return {p.name: p.read_bytes() for p in sorted((video_dir / "labels").glob("*.txt"))}


def finished(client, batch_id):
    try:
        states = [client.hget(k, "state") for k in client.keys(f"cvfleet:batch:{batch_id}:video:*[0-9]")]
    except (redis.ConnectionError, redis.BusyLoadingError):
        return None
    return states and all(s in ("done", "failed", "cancelled") for s in states) and states


def test_redis_killed_mid_batch_and_back_after_the_clients_gave_up_the_batch_still_ends(tmp_path):
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec
    from workers.redis_server import find_redis_server, start_redis

    video = tmp_path / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    settings = AnnotateSettings(every=4, max_frames=24, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    annotate_video(video, tmp_path / "clean", settings)
    with bare_workers(tmp_path, WINDOWS, ("a", "b")) as (env, client, workers):
        sub = cvfleet(
            "annotate", str(video), "--out", str(tmp_path / "out"), "--every", "4", "--max-frames", "24", "--no-wait",
            env=env,
        )  # fmt: skip
        assert sub.returncode == 0, sub.stderr
        batch_id = sub.stdout.strip()
        chunks = f"cvfleet:batch:{batch_id}:video:0:chunks"
        wait_for(lambda: client.hlen(chunks) >= 1, 180, every=0.05, what="detection under way")
        os.kill(int(client.info("server")["process_id"]), signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(OUTAGE)
        port = int(env["CVFLEET_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        server = start_redis(find_redis_server(), port, tmp_path / "redis", tmp_path / "redis-again.log")
        try:
            back = time.monotonic()
            states = wait_for(lambda: finished(client, batch_id), 240, every=0.5, what="batch end")
            ended = time.monotonic()
            record = client.hgetall(f"cvfleet:batch:{batch_id}:video:0")
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        logs = "".join((tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in workers)
    print(f"\noutage {back - killed:.1f} s; batch ended {ended - back:.1f} s after Redis was back")
    assert states == ["done"], record.get("error")
    assert label_bytes(tmp_path / "out" / "vtest") == label_bytes(tmp_path / "clean" / "vtest")
    assert "Redis unreachable" in logs  # a chunk finished during the outage and could not report
    assert "sent again" in logs  # ... and the watchdog drove it on
