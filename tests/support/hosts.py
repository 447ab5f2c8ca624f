"""Simulated hosts for tests: a head (this machine, where the submitter's files and Redis live) and N
hosts that reach it only over a network, as real as one machine allows.

What is real: each host is a Linux network namespace with its own network stack (an `eth0`, a
loopback, an address on a private /24 the lab creates and removes), joined to the head by veth pairs
on a bridge, so every byte between a host and the head crosses TCP/IP and a cable can be pulled
(`Host.cut`). Each command a host runs also gets its own mount namespace, where the head's files
(the lab's head directory, the session's data root, the asset cache) are covered by empty tmpfs,
and its own hostname (UTS namespace): separate processes that see only their own files and the
network. What is not real: one kernel, one CPU budget and one clock shared by all; everything not
hidden (/tmp outside the head's directory, the Python install, the repository) is the same files
for all; pids are the machine's (no PID namespace); no packet loss, latency or bandwidth limit.

The bridge lives in a namespace of its own; the head's end of its veth is the one thing added to
this machine's network (an address and the connected route of the lab's /24, both gone when the
lab ends). Needs root; `lab()` skips the test with the reason otherwise.

    with lab(tmp_path, hosts=2) as net:
        workers = [host.worker("detect") for host in net.hosts]
        net.wait_workers(workers)
        cvfleet("smoke", env=net.env)   # from the head, through Redis on net.address
        net.hosts[0].cut(); ...; net.hosts[0].restore()
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from support.fleet import CVFLEET, ROOT

RUN = f"cvf{secrets.token_hex(2)}"  # every namespace and link this test process creates starts with it
_lab_numbers = itertools.count(1)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


@functools.cache
def unavailable() -> str | None:
    """Why namespaced hosts cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "simulated hosts need root (ip netns, unshare --mount); CI runs them as root"
    missing = [tool for tool in ("ip", "unshare", "mount") if not shutil.which(tool)]
    if missing:
        return f"simulated hosts need {', '.join(missing)} (iproute2, util-linux)"
    probe = f"{RUN}-probe"
    steps = [
        ["ip", "netns", "add", probe],
        ["ip", "-n", probe, "link", "add", "name", "bridge0", "type", "bridge"],
        ["ip", "-n", probe, "link", "add", "name", "a", "type", "veth", "peer", "name", "b"],
        ["ip", "netns", "exec", probe, "unshare", "--mount", "--uts", "--propagation", "private",
         "sh", "-c", "mount -t tmpfs probe /tmp && hostname probe"],
    ]  # fmt: skip
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=30)
            if done.returncode:
                return f"simulated hosts cannot be made here: `{' '.join(step)}` failed: {done.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def require_namespaces() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


@dataclass(frozen=True)
class Worker:
    name: str  # the Celery node name, QUEUES@HOST
    proc: subprocess.Popen


@dataclass
class Host:
    """One simulated machine. Its namespace, hostname and the bridge's port for it share one name."""

    lab: Lab
    name: str
    address: str
    dir: Path  # the host's own files (its data root and cache); the head does not hide them

    @property
    def env(self) -> dict:
        """What an extra machine sets: the head's Redis URL (with password), a data root and cache of its own."""
        env = {k: v for k, v in os.environ.items() if k not in ("CVFLEET_REDIS_PASSWORD", "CVFLEET_REDIS_URL")}
        env.update(CVFLEET_DATA=str(self.dir / "data"), CVFLEET_CACHE=str(self.dir / "cache"), **self.lab.extra_env)
        if self.lab.redis_url:
            env["CVFLEET_REDIS_URL"] = self.lab.redis_url
        return env

    def command(self, cmd: list[str], hide: Iterable[Path] | None = None) -> list[str]:
        """`cmd` wrapped to run on this host: in its network namespace, in a new mount and UTS namespace
        where each path of `hide` (default: `lab.hidden`) is an empty tmpfs and the hostname is the host's."""
        mounts = [f"mount -t tmpfs -o mode=0755 cvfleet-hidden {shlex.quote(str(p))}" for p in self.lab._covers(hide)]
        script = "; ".join(["set -e", *mounts, f"hostname {self.name}", 'exec "$@"'])
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", script, "sh", *cmd]  # fmt: skip

    def run(
        self, cmd: list[str], *, hide: Iterable[Path] | None = None, env: dict | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run `cmd` on this host to the end; text output captured, never raises on a non-zero exit."""
        return subprocess.run(
            self.command(cmd, hide),
            env={**self.env, **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(
        self, cmd: list[str], *, hide: Iterable[Path] | None = None, env: dict | None = None, log: Path | None = None
    ) -> subprocess.Popen:
        """Start `cmd` on this host in a session of its own (stopped with the lab); output to `log`
        (default: DIR/proc-N.log)."""
        log = log or self.dir / f"proc-{len(self.lab._procs)}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.command(cmd, hide),
                env={**self.env, **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.lab._procs.append(proc)
        return proc

    def worker(
        self, queues: str = "video,detect,train", concurrency: int = 1, *, hide: Iterable[Path] | None = None,
        env: dict | None = None,
    ) -> Worker:  # fmt: skip
        """`cvfleet worker` on this host against the head's Redis, named QUEUES@HOST; log in DIR/worker-QUEUES.log."""
        name = f"{queues.replace(',', '-')}@{self.name}"
        cmd = [*CVFLEET, "worker", "-Q", queues, "-c", str(concurrency), "-n", name]
        log = self.dir / f"worker-{queues.replace(',', '-')}.log"
        return Worker(name, self.popen(cmd, hide=hide, env=env, log=log))

    def cut(self) -> None:
        """Pull the cable: the bridge's port for this host goes down; its connections stall, nothing is reset."""
        ip("-n", self.lab.switch, "link", "set", self.name, "down")

    def restore(self) -> None:
        """Plug the cable back in."""
        ip("-n", self.lab.switch, "link", "set", self.name, "up")


@dataclass
class Flower:
    url: str
    auth: tuple[str, str]

    def get(self, path: str) -> tuple[int, bytes]:
        token = b64encode(":".join(self.auth).encode()).decode()
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(self, path: str):
        """The JSON of a Flower API path, asked with the password."""
        status, body = self.get(path)
        assert status == 200, f"Flower {path}: HTTP {status}"
        return json.loads(body)


@dataclass
class Lab:
    """The head (this machine) and its hosts on one bridge. See `lab()`."""

    name: str
    dir: Path
    net: str  # first three octets of the lab's /24
    hosts: list[Host] = field(default_factory=list)
    extra_env: dict = field(default_factory=dict)  # set for every process of the head and the hosts
    redis_url: str | None = None  # redis://:PASSWORD@ADDRESS:PORT/0 once Redis is started
    _procs: list[subprocess.Popen] = field(default_factory=list)
    _app: object = None

    @property
    def switch(self) -> str:
        """The namespace holding the bridge."""
        return f"{self.name}-sw"

    @property
    def address(self) -> str:
        """The head's address on the bridge: Redis listens here."""
        return f"{self.net}.1"

    @property
    def head(self) -> Path:
        """The submitter's side: put videos and output here; `data/` is the head's data root (fleet dir,
        Redis password). Hidden from every host."""
        return self.dir / "head"

    @property
    def hidden(self) -> list[Path]:
        """What a host's command does not see unless told otherwise: the head's directory, this session's
        data root and the asset cache."""
        from workers import config

        cfg = config.load()
        return [self.head, cfg.data, cfg.cache]

    def _covers(self, hide: Iterable[Path] | None) -> list[Path]:
        """The paths to mount over, outermost first, each existing (an empty dir is made if needed) and
        none inside another (a tmpfs over a parent already hides it)."""
        paths = sorted({Path(p).resolve() for p in (self.hidden if hide is None else hide)}, key=lambda p: len(p.parts))
        covers: list[Path] = []
        for path in paths:
            if not any(path.is_relative_to(c) for c in covers):
                path.mkdir(parents=True, exist_ok=True)
                covers.append(path)
        return covers

    @property
    def cfg(self):
        """The head's configuration: its data root and the Redis on the bridge."""
        from workers import config

        cfg = replace(config.load(), data=self.head / "data")
        return replace(cfg, redis_url=self.redis_url) if self.redis_url else cfg

    @property
    def env(self) -> dict:
        """Environment for commands the head runs (`cvfleet(..., env=lab.env)`)."""
        env = {"CVFLEET_DATA": str(self.head / "data"), **self.extra_env}
        if self.redis_url:
            env["CVFLEET_REDIS_URL"] = self.redis_url
        return env

    def spawn(self, cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        """A process on the head, in a session of its own, stopped with the lab."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                env={**os.environ, **self.env, **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def worker(self, queues: str = "video", concurrency: int = 1, env: dict | None = None) -> Worker:
        """`cvfleet worker` on the head (where the videos and output are), named QUEUES@head."""
        name = f"{queues.replace(',', '-')}@head"
        cmd = [*CVFLEET, "worker", "-Q", queues, "-c", str(concurrency), "-n", name]
        return Worker(name, self.spawn(cmd, self.head / f"worker-{queues.replace(',', '-')}.log", env))

    def start_redis(self) -> str:
        """The head's Redis, with the fleet's password (from the head's fleet dir), bound to the bridge address."""
        import redis

        from workers.fleet import redis_password
        from workers.redis_server import find_redis_server, start_redis

        password = redis_password(self.cfg)
        port = _free_port(self.address)
        proc = start_redis(
            find_redis_server(), port, self.head / "redis", self.head / "redis.log", password, listen=self.address
        )
        self._procs.append(proc)
        url = f"redis://:{password}@{self.address}:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=1)
        _wait_until(lambda: _answers(client), 20, "the head's Redis")
        self.redis_url = url
        return url

    def start_flower(self) -> Flower:
        """Flower on the head, started as the fleet starts it (basic auth, loopback), watching the lab's Redis."""
        from workers.fleet import flower_command, flower_env, flower_password

        cfg = self.cfg
        auth = (cfg.flower_user, flower_password(cfg))
        port = _free_port("127.0.0.1")
        self.spawn(
            flower_command(port, "127.0.0.1", self.head / "flower.db"),
            self.head / "flower.log",
            {"FLOWER_BASIC_AUTH": flower_env(*auth)["FLOWER_BASIC_AUTH"]},
        )
        flower = Flower(f"http://127.0.0.1:{port}", auth)
        _wait_until(lambda: _healthy(flower), 60, "Flower on the head")
        return flower

    def app(self):
        """A Celery app of the head, bound to the lab's Redis (send tasks, ping workers)."""
        if self._app is None:
            from workers.app import make_app

            self._app = make_app(self.cfg)
        return self._app

    def wait_workers(self, workers: Iterable[Worker | str], timeout: float = 120) -> None:
        """Until every named worker answers a ping from the head (a dead one fails at once, with its log)."""
        workers = list(workers)
        names = {w if isinstance(w, str) else w.name for w in workers}
        procs = [w.proc for w in workers if isinstance(w, Worker)]

        def answered() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"a host's worker exited with code {proc.returncode}: see {self.dir}/h*/")
            replies = self.app().control.ping(timeout=1.0) or []
            return names <= {name for reply in replies for name in reply}

        _wait_until(answered, timeout, f"workers {sorted(names)}")

    def _stop(self) -> None:
        if self._app is not None:
            self._app.close()
        for proc in reversed(self._procs):
            _stop_group(proc)


@contextlib.contextmanager
def lab(tmp_path: Path, hosts: int = 2, *, redis: bool = True, env: dict | None = None) -> Iterator[Lab]:
    """A head and `hosts` hosts on a bridge, and (unless `redis=False`) the head's Redis on the
    bridge address; `env` is added to every process the lab starts (a short stall window...).
    Everything it made is removed on the way out, whatever happened inside."""
    require_namespaces()
    the_lab = Lab(f"{RUN}-{next(_lab_numbers)}", Path(tmp_path), _free_subnet(), extra_env=dict(env or {}))
    try:
        _build(the_lab, hosts)
        if redis:
            the_lab.start_redis()
        yield the_lab
    finally:
        the_lab._stop()
        sweep(the_lab.name)


def _build(the_lab: Lab, hosts: int) -> None:
    sw, head_link = the_lab.switch, f"{the_lab.name}-hd"
    the_lab.head.mkdir(parents=True, exist_ok=True)
    ip("netns", "add", sw)
    ip("-n", sw, "link", "add", "name", "bridge0", "type", "bridge")
    ip("-n", sw, "link", "set", "bridge0", "up")
    ip("link", "add", "name", head_link, "type", "veth", "peer", "name", "head", "netns", sw)
    _no_ipv6(head_link)  # only the lab's IPv4 /24 is added to this machine's routes
    ip("addr", "add", f"{the_lab.address}/24", "dev", head_link)
    ip("link", "set", head_link, "up")
    ip("-n", sw, "link", "set", "head", "master", "bridge0", "up")
    for i in range(1, hosts + 1):
        host = Host(the_lab, f"{the_lab.name}-h{i}", f"{the_lab.net}.{10 + i}", the_lab.dir / f"h{i}")
        host.dir.mkdir(parents=True, exist_ok=True)
        ip("netns", "add", host.name)
        ip("-n", sw, "link", "add", "name", host.name, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        ip("-n", sw, "link", "set", host.name, "master", "bridge0", "up")
        ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.name, "link", "set", "eth0", "up")
        ip("-n", host.name, "link", "set", "lo", "up")
        the_lab.hosts.append(host)


def sweep(prefix: str = RUN) -> None:
    """Remove every namespace and link whose name starts with `prefix`, after killing what runs in
    those namespaces. Run at each lab's end and at exit for the whole run (what a crash left behind)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return
    spaces = [line.split()[0] for line in ip("netns", "list", check=False).stdout.splitlines() if line.strip()]
    spaces = [name for name in spaces if name.startswith(prefix)]
    for name in spaces:
        for pid in ip("netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link.startswith(prefix):
            ip("link", "del", link, check=False)
    for name in spaces:
        ip("netns", "del", name, check=False)


atexit.register(sweep)


def _free_subnet() -> str:
    """A 10.231.X /24 that no address or route of this machine touches."""
    used = ip("-o", "addr").stdout + ip("route", "show", "table", "all").stdout
    free = [x for x in range(256) if f"10.231.{x}." not in used]
    if not free:
        raise RuntimeError("no free 10.231.X.0/24 left for a lab")
    return f"10.231.{random.choice(free)}"


def _no_ipv6(link: str) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6").write_text("1")


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready in {timeout:.0f} s")


def _answers(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _healthy(flower: Flower) -> bool:
    try:
        return flower.get("/healthcheck")[0] == 200
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the process's session, SIGKILL it if the leader outlives `grace`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # pool children the leader left behind
