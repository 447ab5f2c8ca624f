"""A smoke job: proves a task crosses the broker, runs on a worker and its JSON result returns."""

from __future__ import annotations

import os
import socket

from workers.app import app


@app.task(name="cvfleet.smoke.square")
def square(x: int) -> dict:
    return {"x": x, "square": x * x, "worker": socket.gethostname(), "pid": os.getpid()}


@app.task(name="cvfleet.smoke.models")
def models() -> dict:
    """Which detectors this pool process holds (spec keys): shows what prewarming loaded."""
    from vision.detector import _cached_detector

    return {"pid": os.getpid(), "loaded": _cached_detector.cache_info().currsize}
