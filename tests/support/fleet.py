"""Running the real `cvfleet` from tests: the command line in a child process, the environment of a
fleet, polling until something happened, and the processes of a running fleet."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CVFLEET = [sys.executable, "-m", "workers.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet_environ(root: Path) -> dict:
    return {
        "CVFLEET_DATA": str(root / "data"),
        "CVFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CVFLEET_FLOWER_PORT": str(free_port()),
        "CVFLEET_VISIBILITY_TIMEOUT": "120",
    }


def cvfleet(
    *args: str, env: dict | None = None, timeout: float = 300, check: bool = False, **kw
) -> subprocess.CompletedProcess:
    """Run the real `cvfleet` command line in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CVFLEET, *args], env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=check, **kw
    )


def wait_for(condition, timeout: float, every: float = 0.2, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s")


def fleet_state(cfg) -> dict:
    return json.loads((cfg.fleet_dir / "fleet.json").read_text())


def pool_children(pid: int) -> list[int]:
    """The prefork pool processes of the worker whose main process is `pid`."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def restart_redis(cfg) -> None:
    """Stop the fleet's Redis gracefully (AOF flushed) and start it again on the same port and dir."""
    from workers.fleet import redis_password
    from workers.redis_server import start_redis

    state = fleet_state(cfg)
    pid = state["pids"]["redis"]
    os.killpg(pid, signal.SIGTERM)
    wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
        30,
        what="Redis exit",
    )
    time.sleep(2)  # Redis is gone for a while, as in a real restart
    proc = start_redis(
        Path(state["redis_binary"]),
        cfg.redis_port,
        cfg.fleet_dir / "redis",
        cfg.fleet_dir / "redis.log",
        redis_password(cfg),
    )
    state["pids"]["redis"] = proc.pid
    (cfg.fleet_dir / "fleet.json").write_text(json.dumps(state, indent=2))


@contextlib.contextmanager
def bare_workers(tmp_path: Path, extra_env: dict, names=("a",), prefix=None):
    """Its own Redis and one `cvfleet worker -c 1` process per name, with `extra_env` (a short
    visibility timeout, a tiny time limit...): for faults the session fleet must not suffer.
    `prefix(name)`: argv put before the worker's command (another host's view of the files: a mount
    namespace, its own data root). Yields (env, redis client, {name: Popen}); worker logs go to
    tmp_path/worker-NAME.log; `start_worker` adds one more."""
    import redis

    from workers.redis_server import find_redis_server, start_redis

    env = {**fleet_environ(tmp_path), **extra_env}
    port = int(env["CVFLEET_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    server = start_redis(find_redis_server(), port, tmp_path / "redis", tmp_path / "redis.log")
    client = redis.Redis(port=port, decode_responses=True)
    workers = {}
    try:
        wait_for(lambda: answers(client), 20, what="Redis")
        for name in names:
            workers[name] = start_worker(tmp_path, env, name, prefix, wait=False)
        wait_for(
            lambda: client.keys("_kombu.binding.*") and all(pool_children(w.pid) for w in workers.values()),
            60,
            what="the workers",
        )
        yield env, client, workers
    finally:
        for proc in (*workers.values(), server):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


def start_worker(tmp_path: Path, env: dict, name: str, prefix=None, wait: bool = True) -> subprocess.Popen:
    """One `cvfleet worker -c 1 -n NAME@%h` in a session of its own (killpg stops it whole), logging to
    tmp_path/worker-NAME.log; with `wait`, returns once its pool process is up."""
    with open(tmp_path / f"worker-{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [*(prefix(name) if prefix else ()), *CVFLEET, "worker", "-c", "1", "-n", f"{name}@%h"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if wait:
        wait_for(lambda: pool_children(proc.pid), 60, what=f"worker {name}")
    return proc


def answers(client) -> bool:
    """The Redis server behind `client` answers a PING."""
    import redis

    try:
        return client.ping()
    except redis.ConnectionError:
        return False
