"""`cvfleet up` starts a fleet that runs tasks; a second `up` starts nothing; `down` leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.fleet import alive, port_free

from support.fleet import ROOT, cvfleet, fleet_environ

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def own_fleet(tmp_path_factory):
    from workers import asset_cache

    asset_cache.ensure("yolov3-tiny")  # in the cache before the workers start: they prewarm it
    env = fleet_environ(tmp_path_factory.mktemp("own-fleet"))
    up = cvfleet("up", "-c", "1", env=env, timeout=180)
    assert up.returncode == 0, up.stderr
    state = json.loads((Path(env["CVFLEET_DATA"]) / "fleet" / "fleet.json").read_text())
    yield env, state, up.stdout
    cvfleet("down", env=env)


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                pass
    return pids


def test_up_prints_flower_url_and_password(own_fleet):
    env, state, out = own_fleet
    password = (Path(env["CVFLEET_DATA"]) / "fleet" / "flower.password").read_text().strip()
    assert f"http://127.0.0.1:{env['CVFLEET_FLOWER_PORT']}" in out
    assert password in out
    assert oct((Path(env["CVFLEET_DATA"]) / "fleet" / "flower.password").stat().st_mode & 0o777) == "0o600"


def test_second_up_reports_the_running_fleet(own_fleet):
    env, state, _ = own_fleet
    again = cvfleet("up", "-c", "1", env=env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    after = json.loads((Path(env["CVFLEET_DATA"]) / "fleet" / "fleet.json").read_text())
    assert after["pids"] == state["pids"]


def test_task_from_a_client_process_returns_its_json_result(own_fleet):
    env, _, _ = own_fleet
    client = "import json; from tasks.smoke import square; print(json.dumps(square.delay(7).get(timeout=60)))"
    out = subprocess.run(
        [sys.executable, "-c", client], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["x"] == 7 and result["square"] == 49


def test_every_pool_process_has_loaded_the_default_model_before_its_first_task(own_fleet):
    env, _, _ = own_fleet
    client = "import json; from tasks.smoke import models; print(json.dumps(models.delay().get(timeout=60)))"
    out = subprocess.run(
        [sys.executable, "-c", client], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["loaded"] == 1


def test_status_lists_the_worker_and_queues(own_fleet):
    env, _, _ = own_fleet
    st = cvfleet("status", env=env)
    assert st.returncode == 0, st.stderr
    assert "worker fleet@" in st.stdout
    assert "video=" in st.stdout and "detect=" in st.stdout and "train=" in st.stdout
    assert f"http://127.0.0.1:{env['CVFLEET_FLOWER_PORT']}" in st.stdout


def test_down_stops_every_process_and_frees_the_ports(own_fleet):
    env, state, _ = own_fleet
    members = [pid for pgid in state["pids"].values() for pid in group_members(pgid)]
    assert len(members) >= 4  # redis, worker main + its pool child, flower
    down = cvfleet("down", env=env)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in members if alive(pid)] == []
    redis_port = int(env["CVFLEET_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    assert port_free(redis_port) and port_free(int(env["CVFLEET_FLOWER_PORT"]))
    assert not (Path(env["CVFLEET_DATA"]) / "fleet" / "fleet.json").exists()
