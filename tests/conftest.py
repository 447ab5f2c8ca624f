"""The session's fixtures: one real local fleet (real Redis, real Celery worker processes, real
Flower), the real model and the real sample video. Helpers the tests import live in tests/support/.

The environment is set here, before any test imports `workers.app`, so the test process, the
`cvfleet` commands it runs and the workers they start all agree on ports and roots. Assets come
from the user's cache (fetched from the registries once, then reused).
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import cv2
import pytest

from support.fleet import answers, cvfleet, fleet_environ, free_port, wait_for
from support.vision import asset, write_clip, yolov3_tiny_model

# A run started in the background by a non-interactive shell (`nohup make test &`, a CI script's
# `cmd &`) ignores SIGINT, every child inherits that, and a Python child that starts with SIGINT
# ignored never raises KeyboardInterrupt: the Ctrl-C tests would see a client that shrugs off
# Ctrl-C. A handler (unlike SIG_IGN) is reset to the default at exec, so the clients the tests
# start get Python's usual Ctrl-C whoever started pytest.
signal.signal(signal.SIGINT, signal.default_int_handler)

SESSION_ROOT = Path(tempfile.mkdtemp(prefix="cvfleet-test-"))
os.environ.update(fleet_environ(SESSION_ROOT))


def _lock_session_redis() -> None:
    """The fleet's Redis password exists before anything in this process reads the Redis URL
    (`cvfleet up` would create it later, after `workers.app` was imported without it)."""
    from workers import config, fleet

    fleet.redis_password(config.load())


_lock_session_redis()


@pytest.fixture(scope="session")
def fleet():
    """The session's local fleet, started by `cvfleet up` and stopped by `cvfleet down`."""
    from workers import config

    up = cvfleet("up", "--concurrency", "2", timeout=180)
    assert up.returncode == 0, up.stderr + up.stdout
    cfg = config.load()
    yield cfg
    cvfleet("down", timeout=120)


@pytest.fixture(scope="session")
def flower_auth(fleet):
    from workers.fleet import flower_password

    return (fleet.flower_user, flower_password(fleet))


@pytest.fixture(scope="session")
def vtest() -> Path:
    """The sample video in the asset cache (tests only read it)."""
    return asset("vtest.avi")


@pytest.fixture(scope="session")
def model_fields() -> dict:
    return yolov3_tiny_model()


@pytest.fixture(scope="session")
def clip12(tmp_path_factory) -> Path:
    """12 frames of vtest.avi, 768x576 at 10 fps."""
    return write_clip(asset("vtest.avi"), tmp_path_factory.mktemp("clip") / "clip12.avi", 12)


@pytest.fixture(scope="session")
def first_frame(vtest):
    cap = cv2.VideoCapture(str(vtest))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


@pytest.fixture(scope="session")
def _bare_redis_server(tmp_path_factory):
    """A real redis-server of its own (loopback, a password) and a client of it; no Celery workers."""
    import redis

    from workers.redis_server import find_redis_server, start_redis

    root, port, password = tmp_path_factory.mktemp("bare-redis"), free_port(), os.urandom(12).hex()
    server = start_redis(find_redis_server(), port, root / "redis", root / "redis.log", password)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
        wait_for(lambda: answers(client), 20, what="Redis")
        yield client
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


@pytest.fixture
def bare_redis(_bare_redis_server, monkeypatch):
    """That Redis, emptied, made the client `tasks.store` hands out in this process, so the stores
    and their Lua scripts run in it (store tests: no fleet, no workers)."""
    from tasks import store

    _bare_redis_server.flushall()
    monkeypatch.setattr(store, "_clients", {os.getpid(): _bare_redis_server})
    return _bare_redis_server


def pytest_collection_modifyitems(items):
    """A test that uses the session fleet carries the `fleet` marker, so `make test-fast` never starts it."""
    unmarked = [item.nodeid for item in items if "fleet" in item.fixturenames and not item.get_closest_marker("fleet")]
    if unmarked:
        raise pytest.UsageError(f"uses the fleet fixture without the fleet marker: {', '.join(unmarked)}")
