"""A smoke job: proves a task crosses the broker, runs on a worker and its JSON result returns."""

from __future__ import annotations

import os
import socket

from workers.app import app


@app.task(name="cvfleet.smoke.square")
def square(x: int) -> dict:
    return {"x": x, "square": x * x, "worker": socket.gethostname(), "pid": os.getpid()}
