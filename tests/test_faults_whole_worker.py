"""A whole worker (main process and pool) SIGKILLed mid-batch: another worker finishes the batch.

Runs its own Redis and two `cvfleet worker` processes with a 10 s visibility timeout, so the dead
worker's unacknowledged task comes back within about 20 s instead of an hour.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from workers import asset_cache

from support.fleet import bare_workers, cvfleet, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.faults]


@pytest.fixture
def two_workers(tmp_path):
    with bare_workers(tmp_path, {"CVFLEET_VISIBILITY_TIMEOUT": "10"}, ("a", "b")) as fleet:
        yield fleet


def test_a_whole_worker_killed_mid_batch_is_replaced_by_the_other(two_workers, tmp_path):
    env, client, workers = two_workers
    video = tmp_path / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    sub = cvfleet(
        "annotate",
        str(video),
        "--out",
        str(tmp_path / "out"),
        "--every",
        "4",
        "--max-frames",
        "30",
        "--no-wait",
        env=env,
    )
    assert sub.returncode == 0, sub.stderr
    batch_id = sub.stdout.strip()
    chunks = f"cvfleet:batch:{batch_id}:video:0:chunks"
    wait_for(lambda: client.hlen(chunks) >= 1, 120, every=0.05, what="detection under way")
    a_log = tmp_path / "worker-a.log"
    in_flight = f"cvfleet:batch:{batch_id}:tasks"  # chunk -> task id, until the chunk reports done

    def held_by_a() -> set[str]:
        # a's log says received and not yet succeeded, and Redis says its chunk is not done: the log
        # alone lags (a once finished its chunk between the test reading its log and the kill)
        return (tasks_in(a_log, "received") - tasks_in(a_log, "succeeded")) & set(client.hvals(in_flight))

    wait_for(held_by_a, 60, every=0.01, what="worker a holding a task")  # kill it mid-task, not between two
    os.killpg(workers["a"].pid, signal.SIGKILL)  # main process and its pool child at once
    workers["a"].wait(10)
    lost = held_by_a()
    show = cvfleet("batch", "show", batch_id, env=env, timeout=240)
    assert show.returncode == 0, show.stderr
    assert f"batch {batch_id} finished: 1 of 1 video(s) ok" in show.stdout
    labels = sorted(p.stem for p in (tmp_path / "out" / "vtest" / "labels").glob("*.txt"))
    assert labels == [f"{i:06d}" for i in range(1, 31)]
    for path in (tmp_path / "out" / "vtest" / "labels").glob("*.txt"):
        lines = path.read_text().splitlines()
        assert len(lines) == len(set(lines))
    assert lost, "worker a held no task when it was killed"
    assert lost <= tasks_in(tmp_path / "worker-b.log", "succeeded")  # b ran what a lost


def tasks_in(log: Path, event: str) -> set[str]:
    """Task ids a worker's log reports as received or succeeded."""
    return set(re.findall(rf"Task cvfleet\.[\w.]+\[([0-9a-f-]+)\] {event}", log.read_text(errors="replace")))
