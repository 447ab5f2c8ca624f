"""Each pool process loads the bundled model with the default settings when it starts.

Loading costs about 0.3 s (more the first time onnxruntime's model is converted, then cached
beside the weights). Paid in the first task of each process, it made a 10-frame clip's fleet run
0.82x the bare loop's speed; paid at process start, a batch with the default model never waits for
it. A batch with another model still loads it once per process (vision.detector.get_detector
keeps it). Nothing is fetched here: a worker started before `cvfleet assets fetch` just skips it.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def default_spec() -> dict | None:
    """The detector spec a default `cvfleet annotate` asks for, or None if the model is not cached."""
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache

    if not asset_cache.cached("yolov3-tiny"):
        return None
    return AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files())).detector_spec()


def prewarm() -> float | None:
    """Load the default detector into this process; seconds it took, or None when not cached.
    A model that does not load is logged and left to the first task, which reports it."""
    start = time.perf_counter()
    try:
        spec = default_spec()
        if spec is None:
            return None
        from vision.detector import get_detector

        get_detector(spec)
    except Exception as e:  # a broken cache must not stop a worker from serving other work
        log.warning("prewarm: the default model did not load (%s: %s)", e.__class__.__name__, e)
        return None
    return time.perf_counter() - start
