"""Where things are and how to reach them, read from the environment once per call.

Every setting has a default that works on one laptop; docker-compose and remote workers override
them with environment variables (see docs/fleet.md, "Configuration").
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def _int(var: str, default: int) -> int:
    value = os.environ.get(var)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"cvfleet: {var}={value!r} is not a whole number; set it to one or unset it") from None


def _float(var: str, default: float) -> float:
    value = os.environ.get(var)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"cvfleet: {var}={value!r} is not a number; set it to one or unset it") from None


REDIS_PASSWORD_FILE = "redis.password"  # in the fleet dir, mode 0600, written by `cvfleet up`
LISTEN_FILE = "redis.listen"  # in the fleet dir while `cvfleet up --listen ADDR` runs: ADDR (Redis speaks TLS only)
CA_FILE = "tls/ca.crt"  # in the fleet dir: the CA that signed the local Redis's TLS certificate
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})  # hosts that are this machine: the local fleet's Redis


@dataclass(frozen=True)
class Config:
    redis_url: str  # with the local fleet's password filled in when it has one (never print it)
    redis_ca: Path | None  # the CA a rediss:// URL's server certificate must be signed by; None for redis://
    data: Path  # storage root: frames, labels, weights, fleet state
    cache: Path  # fetched assets (models, sample video, data sets)
    flower_port: int
    flower_user: str
    visibility_timeout: int  # seconds; must exceed the longest task
    task_time_limit: int  # seconds; hard limit, a little below visibility_timeout
    redis_retry_seconds: float  # how long a task's Redis command retries through an outage before it fails
    watchdog_interval: float  # seconds between two looks of the batch watchdog (tasks/watchdog.py)
    stall_seconds: float  # a chunk, label or prepare with no news for this long is sent again
    chunk_seconds: float  # detect tasks hold at least this much work (measured ms per tile), about 2-4 s
    segments: int  # extraction tasks per video; 0: as many as keep the fleet fed (vision.chunking.segment_count)
    storage: str  # "redis": bytes travel through Redis (hosts share nothing else); "shared": by path on a shared root
    blob_max_mib: float  # the largest user data file a sweep sends through Redis

    @property
    def fleet_dir(self) -> Path:
        """State of the local fleet started by `cvfleet up`: pids, logs, Redis AOF, Flower password."""
        return self.data / "fleet"

    @property
    def redis_url_public(self) -> str:
        """The Redis URL with any password masked, for output and logs."""
        parsed = urlparse(self.redis_url)
        if not parsed.password:
            return self.redis_url
        return self.redis_url.replace(f":{parsed.password}@", ":***@", 1)

    @property
    def redis_host(self) -> str:
        return urlparse(self.redis_url).hostname or "127.0.0.1"

    @property
    def redis_port(self) -> int:
        return urlparse(self.redis_url).port or 6379

    @property
    def redis_tls(self) -> bool:
        return urlparse(self.redis_url).scheme == "rediss"

    def redis_ssl_options(self) -> dict:
        """redis-py's keyword arguments for this URL: verify the server against the fleet's CA
        (Celery's `broker_use_ssl` and `redis_backend_use_ssl` take the same keys); none for redis://."""
        if not self.redis_tls:
            return {}
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(self.redis_ca)}

    @property
    def heartbeat_fresh(self) -> float:
        """Seconds a worker's heartbeat counts: 3 watchdog intervals (it beats once an interval) plus
        30 s for a main process busy elsewhere. Dispatch sizes the fleet by the workers heard from."""
        return 3 * self.watchdog_interval + 30

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"


def load() -> Config:
    home = Path.home()
    data_default = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "cvfleet"
    cache_default = Path(os.environ.get("XDG_CACHE_HOME", home / ".cache")) / "cvfleet"
    vt = _int("CVFLEET_VISIBILITY_TIMEOUT", 3600)
    data = _path("CVFLEET_DATA", data_default)
    redis_url = local_redis_url(os.environ.get("CVFLEET_REDIS_URL", "redis://127.0.0.1:6399/0"), data)
    return Config(
        redis_url=redis_url,
        redis_ca=redis_ca(redis_url, data),
        data=data,
        cache=_path("CVFLEET_CACHE", cache_default),
        flower_port=_int("CVFLEET_FLOWER_PORT", 5555),
        flower_user=os.environ.get("CVFLEET_FLOWER_USER", "cvfleet"),
        visibility_timeout=vt,
        task_time_limit=_int("CVFLEET_TASK_TIME_LIMIT", vt - min(60, vt // 10)),  # always below vt
        redis_retry_seconds=_float("CVFLEET_REDIS_RETRY_SECONDS", 120),
        watchdog_interval=_float("CVFLEET_WATCHDOG_INTERVAL", 10),
        stall_seconds=_float("CVFLEET_STALL_SECONDS", 300),
        chunk_seconds=_float("CVFLEET_CHUNK_SECONDS", 2.0),
        segments=_int("CVFLEET_SEGMENTS", 0),
        storage=_storage(),
        blob_max_mib=_float("CVFLEET_BLOB_MAX_MIB", 256),
    )


def _storage() -> str:
    value = os.environ.get("CVFLEET_STORAGE") or "redis"
    if value not in ("redis", "shared"):
        raise SystemExit(
            f"cvfleet: CVFLEET_STORAGE={value!r} is neither 'redis' (the default: hosts share only Redis) "
            "nor 'shared' (every worker sees the storage root at the same path)"
        )
    return value


def local_redis_url(url: str, data: Path) -> str:
    """A loopback URL without a password gets the local fleet's: CVFLEET_REDIS_PASSWORD (how `cvfleet up`
    hands it to its workers) or the 0600 file `cvfleet up` wrote under the data root. While the local
    fleet listens on a network (`up --listen`: TLS only) a loopback redis:// URL becomes rediss://. A URL
    that names its own password, or another host, is used as it is."""
    parsed = urlparse(url)
    if parsed.hostname not in LOOPBACK:
        return url
    if parsed.scheme == "redis" and (data / "fleet" / LISTEN_FILE).exists():
        url = "rediss" + url[len("redis") :]
        parsed = urlparse(url)
    if parsed.password:
        return url
    password = os.environ.get("CVFLEET_REDIS_PASSWORD")
    if not password:
        try:
            password = (data / "fleet" / REDIS_PASSWORD_FILE).read_text().strip()
        except OSError:
            return url
    user = quote(parsed.username, safe="") if parsed.username else ""
    return url.replace(f"{parsed.scheme}://", f"{parsed.scheme}://{user}:{quote(password, safe='')}@", 1)


def redis_ca(url: str, data: Path) -> Path | None:
    """The CA file for a rediss:// URL: CVFLEET_REDIS_CA, or for a loopback URL the local fleet's.
    A rediss:// URL without one, or a CA file that is not there, stops here in one line: a client
    that cannot check whom it talks to would hand its password to anyone on the path."""
    parsed = urlparse(url)
    if parsed.scheme != "rediss":
        return None
    value = os.environ.get("CVFLEET_REDIS_CA")
    if not value:
        if parsed.hostname in LOOPBACK:
            return data / "fleet" / CA_FILE
        raise SystemExit(
            f"cvfleet: CVFLEET_REDIS_URL is rediss:// ({parsed.hostname}) but CVFLEET_REDIS_CA is not set: "
            f"copy the fleet's CA (`cvfleet up --listen` prints where it is) here and set CVFLEET_REDIS_CA to its path"
        )
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise SystemExit(
            f"cvfleet: CVFLEET_REDIS_CA={value} is not a file: copy the fleet's CA there "
            "(`cvfleet up --listen` prints where it is) or fix the path"
        )
    return path
