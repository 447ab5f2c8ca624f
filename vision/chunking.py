"""Tile jobs cut into detect tasks of about equal time, from the detector's measured speed.

A task of a fixed number of frames is seconds long on 768x576 and minutes long on a 8K frame cut
into hundreds of tiles; a task per tile of a 320x240 clip is mostly messaging. So a task holds
work by time: at least `min_seconds` (2 s) of it, as many tasks as that allows, each the same
share, so tasks last 2-4 s: one huge frame becomes many tasks, many tiny frames become one.

Cost of a job: one forward (`ms_per_tile`: every tile is resized to the net's input, so all cost
the same) plus, for the first job of a frame in a task, reading that frame (`ms_per_frame`).
Labels do not depend on the cut (`pipeline.gather_detections` sorts each frame's tiles).
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from .errors import VisionError

MIN_SECONDS = 2.0


def job_costs(jobs, ms_per_tile: float, ms_per_frame: float) -> list[float]:
    """Milliseconds of each [frame name, tile] job in order: a forward, plus a frame read when the
    job starts a new frame."""
    costs, previous = [], None
    for name, _ in jobs:
        costs.append(ms_per_tile + (ms_per_frame if name != previous else 0.0))
        previous = name
    return costs


def plan_chunks(jobs, ms_per_tile: float, ms_per_frame: float = 0.0, min_seconds: float = MIN_SECONDS) -> list:
    """Consecutive chunks of `jobs` of about equal time, each at least `min_seconds` (unless all the
    work is less): floor(total / min_seconds) chunks, cut where the running cost crosses each share."""
    if not ms_per_tile > 0 or ms_per_frame < 0 or not min_seconds > 0:
        raise VisionError(
            f"chunk sizing needs ms_per_tile > 0, ms_per_frame >= 0 and min_seconds > 0, "
            f"got {ms_per_tile!r}, {ms_per_frame!r}, {min_seconds!r}"
        )
    jobs = list(jobs)
    if not jobs:
        return []
    costs = job_costs(jobs, ms_per_tile, ms_per_frame)
    total = sum(costs)
    n = max(1, min(len(jobs), math.floor(total / (1000.0 * min_seconds))))
    share = total / n
    chunks, current, spent = [], [], 0.0
    for job, cost in zip(jobs, costs):
        current.append(job)
        spent += cost
        if spent >= share * (len(chunks) + 1) - 1e-9 and len(chunks) < n - 1:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def time_detector(detector, runs: int = 3) -> float:
    """Milliseconds per tile of `detector`: the median of `runs` forwards of a blank tile at the net's
    input size, after one warm-up forward (the first allocates). Content does not change a forward."""
    image = np.zeros((detector.input_size, detector.input_size, 3), np.uint8)
    detector.detect(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def time_frame_read(read, frame_path) -> float:
    """Milliseconds to read one frame with `read(path)` (decode dominates: a 4K JPEG costs tens of ms)."""
    start = time.perf_counter()
    read(frame_path)
    return 1000.0 * (time.perf_counter() - start)


SEGMENT_SECONDS = 30.0  # an extraction segment holds at least this much work (short videos: one task)
MAX_SEGMENT_SECONDS = 900.0  # and at most this much (a task's hard limit is about an hour)


def segment_count(frames: int, ms_extract: float, ms_detect_frame: float, processes: int) -> int:
    """How many tasks extract a video of `frames` sampled frames at once: as many as keep the
    fleet's `processes` fed (each detects a frame in `ms_detect_frame`, one extractor writes one
    in `ms_extract`), at most half the processes (the rest detect), each with at least
    SEGMENT_SECONDS of work, and always enough that none holds more than MAX_SEGMENT_SECONDS."""
    total = frames * ms_extract / 1000.0
    feed = math.ceil(processes * ms_extract / ms_detect_frame) if ms_detect_frame > 0 else 1
    n = min(feed, max(1, processes // 2), math.floor(total / SEGMENT_SECONDS))
    return max(1, n, math.ceil(total / MAX_SEGMENT_SECONDS))


def time_extract(video_path, jpeg_quality: int = 95) -> float:
    """Milliseconds to decode a video's first frame and encode it as a JPEG (0.0 if none decodes)."""
    cap = cv2.VideoCapture(str(video_path))
    try:
        start = time.perf_counter()
        ok, image = cap.read()
        if not ok or image is None:
            return 0.0
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        return 1000.0 * (time.perf_counter() - start)
    finally:
        cap.release()
