"""The local fleet: one real Redis, one Celery worker (a prefork pool over all queues) and
Flower, started as background processes on this machine and stopped by pid.

State lives in `<data>/fleet/`: `fleet.json` (pids, ports), logs, the Redis AOF, and the Redis and
Flower passwords (mode 0600). Starting twice finds the running fleet and starts nothing.

Redis is locked even on loopback: a batch record names the roots that path confinement trusts, so
any local user who could write one could point workers at their files. The password reaches the
workers and Flower through the environment (CVFLEET_REDIS_PASSWORD), never argv.

`up --listen ADDR` opens Redis to other machines: on ADDR besides loopback, TLS only, with a
certificate from the fleet's own CA (workers/tls.py); `redis.listen` in the fleet dir says so to the
local clients, whose loopback URL becomes rediss://. Flower stays on loopback. A worker joining a
fleet (`join_check`) first proves it can reach Redis, with the password, the CA and the same cvfleet
protocol number (workers/protocol.py), or stops with one line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from workers import config, protocol, tls
from workers.redis_server import find_redis_server, start_redis


class FleetError(RuntimeError):
    """A one-line reason the fleet could not start or be reached, with what to do."""


@dataclass
class Started:
    already_running: bool
    state: dict
    password: str


def _state_file(cfg: config.Config) -> Path:
    return cfg.fleet_dir / "fleet.json"


def read_state(cfg: config.Config) -> dict | None:
    try:
        return json.loads(_state_file(cfg).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def flower_password(cfg: config.Config) -> str:
    """Generated once, kept with mode 0600 beside the fleet state."""
    return _secret(cfg, "flower.password")


def redis_password(cfg: config.Config) -> str:
    """The local Redis's `requirepass`, generated once, kept with mode 0600 beside the fleet state."""
    return _secret(cfg, config.REDIS_PASSWORD_FILE)


def _secret(cfg: config.Config, name: str) -> str:
    path = cfg.fleet_dir / name
    if path.exists():
        return path.read_text().strip()
    cfg.fleet_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def _wait(what: str, ready, timeout: float, log: Path, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise FleetError(f"{what} exited with code {p.returncode} while starting: see {log}")
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise FleetError(f"{what} did not become ready in {timeout:.0f} s: see {log}")


def _redis_ready(cfg: config.Config):
    import redis

    client = redis.Redis.from_url(cfg.redis_url, socket_timeout=1, **cfg.redis_ssl_options())
    return lambda: client.ping()


def check_listen(address: str, port: int) -> None:
    """`--listen` must name an address of this machine (Redis would fail later, half started)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise FleetError(
            f"--listen {address}: not an IP address; give the address of this machine that the other machines "
            "reach (`ip -brief addr` lists them)"
        ) from None
    if ip.is_unspecified:
        raise FleetError(
            f"--listen {address}: name one address of this machine that the other machines reach "
            "(`ip -brief addr` lists them); the TLS certificate names that address"
        )
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET) as s:
        try:
            s.bind((address, 0))
        except OSError:
            raise FleetError(
                f"--listen {address}: this machine has no such address: pick one that `ip -brief addr` lists"
            ) from None
    if not port_free(port, address):
        raise FleetError(f"--listen {address}: port {port} there is already taken by another program: stop it")


def _flower_ready(port: int, user: str, password: str):
    token = b64encode(f"{user}:{password}".encode()).decode()

    def ready() -> bool:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthcheck", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(req, timeout=1) as r:
            return r.status == 200

    return ready


def worker_env(concurrency: int, redis_password: str | None = None) -> dict:
    """Pin BLAS/OpenCV threads before the worker starts: cores split over the pool processes,
    unless CVFLEET_THREADS_PER_PROCESS says otherwise. The local Redis password, if given, travels
    in the environment."""
    threads = os.environ.get("CVFLEET_THREADS_PER_PROCESS") or str(max(1, (os.cpu_count() or 1) // concurrency))
    env = dict(os.environ)
    if redis_password:
        env["CVFLEET_REDIS_PASSWORD"] = redis_password
    env.update(
        OPENBLAS_NUM_THREADS=threads,
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        CVFLEET_THREADS_PER_PROCESS=threads,
        PYTHONUNBUFFERED="1",
    )
    return env


def worker_command(concurrency: int, queues: str, name: str, logfile: Path | None = None) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        name,
        "--loglevel",
        "INFO",
        "-E",
    ]
    if logfile:
        cmd += ["--logfile", str(logfile)]
    return cmd


def flower_command(port: int, address: str, db: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "flower",
        f"--address={address}",
        f"--port={port}",
        "--persistent=True",
        f"--db={db}",
        "--state_save_interval=10000",
    ]


def flower_env(user: str, password: str, redis_password: str | None = None) -> dict:
    """The credentials travel in the environment, not argv, so `ps` does not show them."""
    env = dict(os.environ)
    if redis_password:
        env["CVFLEET_REDIS_PASSWORD"] = redis_password
    env["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
    return env


def _spawn(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )


def running(cfg: config.Config) -> dict | None:
    state = read_state(cfg)
    if state and all(alive(pid) for pid in state["pids"].values()):
        return state
    return None


def up(
    concurrency: int | None = None, cfg: config.Config | None = None, timeout: float = 90, listen: str = ""
) -> Started:
    """Start the local fleet; with `listen`, Redis also listens on that address, TLS only."""
    cfg = cfg or config.load()
    password = flower_password(cfg)
    secret = None
    if cfg.redis_host in config.LOOPBACK:  # the password exists before anything reads the URL
        secret = redis_password(cfg)
        cfg = replace(cfg, redis_url=config.local_redis_url(cfg.redis_url, cfg.data))
    state = running(cfg)
    if state:
        if listen and state.get("listen", "") != listen:
            now = f"listens on {state['listen']}" if state.get("listen") else "listens on loopback only"
            raise FleetError(f"the fleet is already running and {now}: `cvfleet down`, then `up --listen {listen}`")
        return Started(True, state, password)
    if read_state(cfg) or _fleet_redis_pid(cfg):  # a fleet that half died: clear what is left of it first
        down(cfg)
    if cfg.redis_host not in config.LOOPBACK:
        raise FleetError(
            f"CVFLEET_REDIS_URL points at {cfg.redis_host}; `cvfleet up` runs Redis on this "
            "machine only: use `cvfleet worker` to join a remote Redis"
        )
    for port, what, var in (
        (cfg.redis_port, "Redis", "CVFLEET_REDIS_URL=redis://127.0.0.1:PORT/0"),
        (cfg.flower_port, "Flower", "CVFLEET_FLOWER_PORT=PORT"),
    ):
        if not port_free(port):
            raise FleetError(f"port {port} for {what} is already taken by another program: stop it or set {var}")
    if listen:
        check_listen(listen, cfg.redis_port)
    concurrency = concurrency or os.cpu_count() or 1
    if concurrency < 1:
        raise FleetError(f"--concurrency must be at least 1, got {concurrency}")
    binary = find_redis_server()
    d = cfg.fleet_dir
    d.mkdir(parents=True, exist_ok=True)
    marker = d / config.LISTEN_FILE
    marker.unlink(missing_ok=True)
    certs, ca_env = None, {}
    plain_url = cfg.redis_url.replace("rediss://", "redis://", 1)  # a marker left by an earlier `up --listen`
    cfg = replace(cfg, redis_url=plain_url, redis_ca=None)
    if listen:
        try:
            certs = tls.ensure_certificates(d / "tls", listen)
        except tls.TLSError as e:
            raise FleetError(str(e)) from None
        cfg = replace(cfg, redis_url=plain_url.replace("redis://", "rediss://", 1), redis_ca=certs.ca_cert)
        ca_env = {"CVFLEET_REDIS_CA": str(certs.ca_cert)}
    procs: list[subprocess.Popen] = []
    try:
        if listen:
            marker.write_text(listen + "\n")
        redis_proc = start_redis(binary, cfg.redis_port, d / "redis", d / "redis.log", secret, certs, listen)
        procs.append(redis_proc)
        try:
            _wait("Redis", _redis_ready(cfg), 20, d / "redis.log", procs)
        except FleetError:
            if listen and "TLS support" in (d / "redis.log").read_text(errors="replace"):
                raise FleetError(
                    f"{binary} was built without TLS, which --listen needs: "
                    "install Redis 6 or newer built with TLS (`apt-get install redis-server`)"
                ) from None
            raise
        require_redis(cfg).set(protocol.KEY, protocol.PROTOCOL)  # the head says which protocol the fleet speaks
        worker = _spawn(
            worker_command(concurrency, "video,detect,train", f"fleet@{socket.gethostname()}", d / "worker.log"),
            d / "worker.out",
            {**worker_env(concurrency, secret), **ca_env},
        )
        procs.append(worker)
        flower = _spawn(
            flower_command(cfg.flower_port, "127.0.0.1", d / "flower.db"),
            d / "flower.log",
            {**flower_env(cfg.flower_user, password, secret), **ca_env},
        )
        procs.append(flower)
        from workers.app import make_app

        app = make_app(cfg)
        _wait("the Celery worker", lambda: bool(app.control.ping(timeout=0.5)), timeout, d / "worker.log", procs)
        _wait("Flower", _flower_ready(cfg.flower_port, cfg.flower_user, password), 30, d / "flower.log", procs)
    except BaseException:
        for p in reversed(procs):
            _stop_group(p.pid)
        marker.unlink(missing_ok=True)
        raise
    state = {
        "pids": {"redis": redis_proc.pid, "worker": worker.pid, "flower": flower.pid},
        "redis_url": cfg.redis_url_public,
        "listen": listen,
        "redis_binary": str(binary),
        "flower_url": cfg.flower_url,
        "concurrency": concurrency,
        "started": time.time(),
    }
    tmp = _state_file(cfg).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file(cfg))
    return Started(False, state, password)


def _stop_group(pid: int, grace: float = 15) -> None:
    """SIGTERM the process group (worker pool children included), SIGKILL what outlives `grace`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not alive(pid) and not _group_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while (alive(pid) or _group_alive(pid)) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and alive(int(entry.name)):
                    return True
            except (ProcessLookupError, PermissionError):
                continue
    return False


def _fleet_redis_pid(cfg: config.Config) -> int | None:
    """The process listening on the fleet's Redis port whose working directory is the fleet's Redis
    dir (Redis chdirs to its `--dir`): the fleet's Redis even if someone restarted it by hand and its
    pid changed. Anything else on that port is not ours and is never touched."""
    ours = (cfg.fleet_dir / "redis").resolve()
    try:
        listeners = [
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == cfg.redis_port and c.pid
        ]
    except psutil.Error:
        return None
    for pid in listeners:
        try:
            if Path(psutil.Process(pid).cwd()).resolve() == ours:
                return pid
        except (psutil.Error, OSError):
            continue
    return None


def _stop_pid(pid: int, grace: float = 15) -> None:
    """SIGTERM one process (not necessarily a group leader), SIGKILL it if it outlives `grace`.
    Not our child, so it is gone when it no longer runs (a zombie waits for its own parent)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive(pid):
            return


def down(cfg: config.Config | None = None) -> list[str]:
    """Stop what `up` started, Flower and workers before Redis; returns what was stopped.

    Only processes still alive are reported. A Redis serving the fleet's port from the fleet's
    directory is stopped too when its pid is not the recorded one (restarted outside the fleet)."""
    cfg = cfg or config.load()
    state = read_state(cfg) or {"pids": {}}
    stopped = []
    for name in ("flower", "worker", "redis"):
        pid = state["pids"].get(name)
        if pid and (alive(pid) or _group_alive(pid)):
            _stop_group(pid)
            stopped.append(f"{name} (pid {pid})")
    stray = _fleet_redis_pid(cfg)
    if stray:
        _stop_pid(stray)
        stopped.append(f"redis (pid {stray}, started outside the fleet)")
    _state_file(cfg).unlink(missing_ok=True)
    (cfg.fleet_dir / config.LISTEN_FILE).unlink(missing_ok=True)
    return stopped


def require_redis(cfg: config.Config):
    """A connected client, or a one-line FleetError saying how to get one. Bounded: a few
    connection attempts of at most 5 s each, about half a minute when packets vanish."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        cfg.redis_url,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.5), 3),
        decode_responses=True,
        **cfg.redis_ssl_options(),
    )
    where, scheme = f"Redis at {cfg.redis_host}:{cfg.redis_port}", "rediss" if cfg.redis_tls else "redis"
    try:
        client.ping()
    except redis.AuthenticationError:
        raise FleetError(
            f"{where} refused the password: put the right one in CVFLEET_REDIS_URL ({scheme}://:PASSWORD@host:port/0)"
        ) from None
    except redis.RedisError as e:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            reason = str(e).split("certificate verify failed: ")[-1].split(" (_ssl")[0]
            raise FleetError(
                f"{where} showed a certificate that CVFLEET_REDIS_CA ({cfg.redis_ca}) does not vouch for "
                f"({reason}): copy the CA file `cvfleet up --listen` printed and point CVFLEET_REDIS_CA at it"
            ) from None
        hint = "" if cfg.redis_tls else "; a fleet started with `up --listen` speaks TLS only: use rediss://"
        raise FleetError(
            f"{where} is unreachable ({e.__class__.__name__}): "
            f"start the fleet with `cvfleet up` or set CVFLEET_REDIS_URL{hint}"
        ) from None
    return client


def join_check(cfg: config.Config) -> None:
    """What a worker proves before it takes a task: Redis answers (reachable, the password, the CA)
    and the fleet speaks this cvfleet's protocol. A fleet whose head wrote no number yet (docker-compose,
    a Redis of one's own) gets this worker's. One-line FleetError otherwise."""
    client = require_redis(cfg)
    client.set(protocol.KEY, protocol.PROTOCOL, nx=True)
    theirs = client.get(protocol.KEY)
    if theirs != str(protocol.PROTOCOL):
        from importlib.metadata import version

        raise FleetError(
            f"the fleet at {cfg.redis_host}:{cfg.redis_port} speaks cvfleet protocol {theirs} and this cvfleet "
            f"{version('cvfleet')} speaks {protocol.PROTOCOL}: install the fleet head's cvfleet version here, "
            "then start the worker again"
        )


def status(cfg: config.Config | None = None) -> dict:
    """Workers that answer a ping, queue lengths in Redis, and where Flower is."""
    from workers.app import QUEUES, make_app

    cfg = cfg or config.load()
    client = require_redis(cfg)
    replies = make_app(cfg).control.inspect(timeout=1.0).stats() or {}
    workers = {
        name: {
            "pool": s.get("pool", {}).get("max-concurrency"),
            "pid": s.get("pid"),
            "tasks": sum(s.get("total", {}).values()),
        }
        for name, s in sorted(replies.items())
    }
    state = read_state(cfg)
    return {
        "redis": cfg.redis_url.split("@")[-1],
        "workers": workers,
        "queues": {q: client.llen(q) for q in QUEUES},
        "flower": cfg.flower_url if state else None,
        "local_fleet": bool(state and running(cfg)),
    }
