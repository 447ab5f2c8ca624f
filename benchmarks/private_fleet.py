"""A benchmark's own fleet: a fresh data root and free ports in the environment, and the fleet's
Redis password made before `workers.app` reads the Redis URL. Call it before importing tasks."""

import os
import socket
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_fleet(prefix: str) -> Path:
    """The data root of a new private fleet (not started), set in os.environ."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        CVFLEET_DATA=str(root / "data"),
        CVFLEET_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        CVFLEET_FLOWER_PORT=str(free_port()),
    )
    from workers import config, fleet

    fleet.redis_password(config.load())
    return root
