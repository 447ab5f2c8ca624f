"""Doors of a fleet whose Redis listens on a network: TLS with the fleet's own CA, the password,
the cvfleet protocol number; whoever lacks one is refused in one line and takes no task.

Loopback only: the head listens on 127.0.0.2 (an address of `lo` that is not 127.0.0.1, so clients
take the path of another machine: their own data root, the URL's password, a copied CA).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from base64 import b64encode
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from support.fleet import CVFLEET, ROOT, cvfleet, fleet_environ, free_port, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

ADDR = "127.0.0.2"


def one_line_error(result) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def tls_client(url: str, ca: Path) -> redis.Redis:
    return redis.Redis.from_url(url, ssl_cert_reqs="required", ssl_ca_certs=str(ca), decode_responses=True)


def answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A real redis-server as `cvfleet up --listen` runs it (TLS only, the fleet's certificates, a
    password) with the fleet's protocol written, and no workers: the door the workers knock on."""
    from workers import protocol
    from workers.redis_server import find_redis_server, start_redis
    from workers.tls import ensure_certificates

    root, port, password = tmp_path_factory.mktemp("tls-redis"), free_port(), os.urandom(12).hex()
    certs = ensure_certificates(root / "tls", ADDR)
    server = start_redis(find_redis_server(), port, root / "redis", root / "redis.log", password, certs, ADDR)
    try:
        url = f"rediss://:{password}@{ADDR}:{port}/0"
        client = tls_client(url, certs.ca_cert)
        wait_for(lambda: answers(client), 20, what="Redis over TLS")
        client.set(protocol.KEY, protocol.PROTOCOL)
        yield SimpleNamespace(url=url, port=port, password=password, ca=certs.ca_cert, client=client)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


@pytest.fixture
def door(tls_redis, tmp_path):
    """A clean Redis, one task waiting in the detect queue (sent over TLS with the protocol header),
    and a worker's environment on another 'machine' (its own data root) with the right URL and CA."""
    from workers import protocol

    tls_redis.client.flushdb()
    tls_redis.client.set(protocol.KEY, protocol.PROTOCOL)
    waiting = celery_app(tls_redis.url, tls_redis.ca).send_task("cvfleet.smoke.square", args=[7], queue="detect")
    env = {**fleet_environ(tmp_path), "CVFLEET_REDIS_URL": tls_redis.url, "CVFLEET_REDIS_CA": str(tls_redis.ca)}
    return SimpleNamespace(env=env, waiting=waiting, redis=tls_redis)


def celery_app(url: str, ca: Path):
    """A client of that Redis, configured as a remote machine's cvfleet would be."""
    from dataclasses import replace

    from workers import config
    from workers.app import make_app

    return make_app(replace(config.load(), redis_url=url, redis_ca=ca))


def assert_not_taken(door) -> None:
    assert door.redis.client.llen("detect") == 1
    assert door.waiting.state == "PENDING"


def test_a_fleet_listening_with_tls_serves_a_client_and_a_worker_that_hold_its_ca(tmp_path):
    env = fleet_environ(tmp_path)
    fleet_dir = Path(env["CVFLEET_DATA"]) / "fleet"
    up = cvfleet("up", "-c", "1", "--listen", ADDR, env=env, timeout=180)
    joiner = None
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        password = (fleet_dir / "redis.password").read_text().strip()
        assert password not in up.stdout + up.stderr
        for key in ("ca.key", "server.key"):
            assert (fleet_dir / "tls" / key).stat().st_mode & 0o777 == 0o600
        state = json.loads((fleet_dir / "fleet.json").read_text())
        assert state["listen"] == ADDR and state["redis_url"].startswith("rediss://")

        # Another machine: the two files the head names, and the command it prints, run as printed.
        command = next(line.strip() for line in up.stdout.splitlines() if "cvfleet worker" in line)
        assert command.startswith('CVFLEET_REDIS_URL="rediss://:$(cat redis.password)@127.0.0.2:')
        remote = tmp_path / "remote"
        remote.mkdir()
        for name in ("tls/ca.crt", "redis.password"):
            assert str(fleet_dir / name) in up.stdout
            shutil.copy(fleet_dir / name, remote)
        remote_env = {"CVFLEET_DATA": str(remote / "data"), "PATH": f"{Path(CVFLEET[0]).parent}:{os.environ['PATH']}"}
        port = env["CVFLEET_REDIS_URL"].rsplit(":", 1)[1]
        client_env = {**remote_env, "CVFLEET_REDIS_URL": f"rediss://:{password}@{ADDR}:{port}"}
        smoke = cvfleet("smoke", "--tasks", "3", env={**client_env, "CVFLEET_REDIS_CA": str(remote / "ca.crt")})
        assert smoke.returncode == 0, smoke.stderr
        assert "squares [0, 1, 4]" in smoke.stdout

        with open(remote / "worker.log", "wb") as log:
            joiner = subprocess.Popen(
                ["bash", "-c", f"{command} -c 1 -n joiner@%h"],
                cwd=remote,
                env={**os.environ, **remote_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        status = wait_for(
            lambda: "worker joiner@" in (s := cvfleet("status", env=env)).stdout and s.stdout, 90, what="the joiner"
        )
        assert "worker fleet@" in status

        # Flower stays on loopback, behind its password, and reaches the workers through TLS Redis.
        assert state["flower_url"] == f"http://127.0.0.1:{env['CVFLEET_FLOWER_PORT']}"
        auth = b64encode(f"cvfleet:{(fleet_dir / 'flower.password').read_text().strip()}".encode()).decode()
        request = urllib.request.Request(
            state["flower_url"] + "/api/workers?refresh=1", headers={"Authorization": f"Basic {auth}"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert any(name.startswith("fleet@") for name in json.loads(r.read()))
        for log in [*fleet_dir.glob("*.log"), *fleet_dir.glob("*.out"), remote / "worker.log"]:
            assert password not in log.read_text(errors="replace"), log.name
    finally:
        if joiner:
            os.killpg(joiner.pid, signal.SIGTERM)
            joiner.wait(60)
        cvfleet("down", env=env, timeout=120)
    assert not (fleet_dir / "redis.listen").exists()


def test_listen_on_an_address_this_machine_lacks_is_one_line_and_starts_nothing(tmp_path):
    env = fleet_environ(tmp_path)
    line = one_line_error(cvfleet("up", "--listen", "198.51.100.7", env=env, timeout=60))
    assert line == (
        "cvfleet: --listen 198.51.100.7: this machine has no such address: pick one that `ip -brief addr` lists"
    )
    fleet_dir = Path(env["CVFLEET_DATA"]) / "fleet"
    assert not (fleet_dir / "fleet.json").exists() and not (fleet_dir / "tls").exists()
    assert not (fleet_dir / "redis").exists()


def test_a_rediss_url_without_a_ca_is_one_line(tmp_path):
    env = {**fleet_environ(tmp_path), "CVFLEET_REDIS_URL": f"rediss://:hunter2-secret@{ADDR}:{free_port()}/0"}
    line = one_line_error(cvfleet("worker", "-Q", "detect", env=env, timeout=60))
    assert line.startswith("cvfleet: CVFLEET_REDIS_URL is rediss:// (127.0.0.2) but CVFLEET_REDIS_CA is not set")
    assert "hunter2" not in line


def test_a_worker_with_a_wrong_password_stops_in_one_line_and_takes_no_task(door):
    env = {**door.env, "CVFLEET_REDIS_URL": door.env["CVFLEET_REDIS_URL"].replace(door.redis.password, "wrong")}
    line = one_line_error(cvfleet("worker", "-Q", "detect", "-c", "1", env=env, timeout=60))
    assert line == (
        f"cvfleet: Redis at {ADDR}:{door.redis.port} refused the password: put the right one in "
        "CVFLEET_REDIS_URL (rediss://:PASSWORD@host:port/0)"
    )
    assert_not_taken(door)


def test_a_worker_holding_another_ca_stops_in_one_line_and_takes_no_task(door, tmp_path):
    from workers.tls import ensure_certificates

    other = ensure_certificates(tmp_path / "other-ca", ADDR).ca_cert
    line = one_line_error(
        cvfleet("worker", "-Q", "detect", "-c", "1", env={**door.env, "CVFLEET_REDIS_CA": str(other)}, timeout=60)
    )
    assert line == (
        f"cvfleet: Redis at {ADDR}:{door.redis.port} showed a certificate that CVFLEET_REDIS_CA ({other}) does not "
        "vouch for (self-signed certificate in certificate chain): copy the CA file `cvfleet up --listen` printed "
        "and point CVFLEET_REDIS_CA at it"
    )
    assert_not_taken(door)


def test_a_worker_against_an_unreachable_redis_stops_in_one_line(door):
    env = {**door.env, "CVFLEET_REDIS_URL": f"rediss://:{door.redis.password}@{ADDR}:{free_port()}/0"}
    line = one_line_error(cvfleet("worker", "-Q", "detect", "-c", "1", env=env, timeout=60))
    assert line.startswith(f"cvfleet: Redis at {ADDR}:") and "is unreachable" in line and "cvfleet up" in line
    assert_not_taken(door)


def test_a_worker_of_another_protocol_is_refused_in_one_line_and_takes_no_task(door):
    from workers import protocol

    door.redis.client.set(protocol.KEY, protocol.PROTOCOL + 1)  # a head of a newer cvfleet
    line = one_line_error(cvfleet("worker", "-Q", "detect", "-c", "1", env=door.env, timeout=60))
    assert line.startswith(
        f"cvfleet: the fleet at {ADDR}:{door.redis.port} speaks cvfleet protocol {protocol.PROTOCOL + 1} and this "
    )
    assert line.endswith(
        f"speaks {protocol.PROTOCOL}: install the fleet head's cvfleet version here, then start the worker again"
    )
    assert_not_taken(door)


def test_a_running_worker_runs_no_message_of_another_protocol(door, tmp_path):
    from workers import protocol

    app = celery_app(door.redis.url, door.redis.ca)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [*CVFLEET, "worker", "-Q", "detect", "-c", "1", "-n", "gate@%h"],
            cwd=ROOT,
            env={**os.environ, **door.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert door.waiting.get(timeout=90)["square"] == 49  # its own protocol: run

        old = app.send_task("cvfleet.smoke.square", args=[2], queue="detect", headers={protocol.HEADER: 0})
        with pytest.raises(RuntimeError, match="sent by a cvfleet of protocol 0 to a fleet of protocol 1"):
            old.get(timeout=60)
        assert f"cvfleet.smoke.square[{old.id}] dropped: sent by a cvfleet of protocol 0" in log_path.read_text()

        newer = protocol.PROTOCOL + 1
        new = app.send_task("cvfleet.smoke.square", args=[3], queue="detect", headers={protocol.HEADER: newer})
        assert worker.wait(90) == 1
        assert (
            f"cvfleet.smoke.square[{new.id}] is cvfleet protocol {newer} and this worker speaks {protocol.PROTOCOL}: "
            "it goes back to the queue and this worker stops" in log_path.read_text()
        )
        assert new.state == "PENDING" and door.redis.client.llen("detect") == 1
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def test_over_rediss_the_broker_and_the_result_backend_verify_the_server_against_the_ca(tmp_path):
    import ssl

    ca = tmp_path / "ca.crt"
    conf = celery_app(f"rediss://:pw@{ADDR}:{free_port()}/0", ca).conf
    verified = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca)}
    assert conf.broker_use_ssl == verified and conf.redis_backend_use_ssl == verified
