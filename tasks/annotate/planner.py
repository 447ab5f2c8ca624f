"""Planning a video's detection: how many extraction segments, and how frames become detect chunks.

Streaming: detection starts with the first frames, not after the whole video is decoded. A short
video is one segment; a long one is cut into as many as keep the fleet fed
(`vision.chunking.segment_count`). As each frame lands, `FramePlanner` gathers its tiles (less the
still ones with --skip-still, less those already detected or planned) until they hold
CVFLEET_CHUNK_SECONDS of work at the model's speed measured in this process, then plans them as
chunks in Redis and feeds the fleet.
"""

from __future__ import annotations

from pathlib import Path

from tasks import batch_store
from tasks.annotate import context, dispatch
from tasks.batch_records import VideoRecord, VideoRun
from vision import pipeline, tile_cache
from vision.chunking import SEGMENT_SECONDS, plan_chunks, segment_count, time_extract, time_frame_read
from vision.frames import IMAGES_DIR
from vision.motion import StillPlanner, gated_jobs
from vision.settings import AnnotateSettings


def chunks_of(run: VideoRun, jobs: list, video_dir: Path, settings: AnnotateSettings) -> tuple[list, float]:
    """The jobs cut into detect chunks: --tiles-per-task as given, else by time (ms per tile
    measured here); the ms per tile used (0 with a fixed size)."""
    fixed = context.batch(run.batch).tiles_per_task
    if fixed:
        return pipeline.chunk_jobs(jobs, fixed), 0.0
    ms_tile = context.ms_per_tile(settings)
    ms_frame = time_frame_read(pipeline.read_frame, video_dir / IMAGES_DIR / f"{jobs[0][0]}.jpg")
    return plan_chunks(jobs, ms_tile, ms_frame, context.cfg().chunk_seconds), ms_tile


def segment_count_for(video: Path, v: VideoRecord, settings: AnnotateSettings, expected: int, per_frame: int) -> int:
    """How many extraction segments the video gets: one with --skip-still (its motion plan runs frame
    after frame), after a seek that was not exact, or when extraction is short; CVFLEET_SEGMENTS if
    set; else as many as keep the fleet fed."""
    if settings.skip_still is not None or v.single_pass:
        return 1
    if context.cfg().segments > 0:
        return context.cfg().segments
    if expected <= 1 or not per_frame:
        return 1
    ms_extract = time_extract(video, settings.jpeg_quality)
    if expected * ms_extract < 2000 * SEGMENT_SECONDS:  # one segment, without timing the model
        return 1
    ms_frame = context.ms_per_tile(settings) * per_frame
    return segment_count(expected, ms_extract, ms_frame, context.fleet_processes())


def source_span(info: dict, sampling: dict) -> int:
    """The source frames a capped extraction (--max-frames) can reach: segments past it are empty."""
    count, cap = info["frame_count"], sampling["max_frames"]
    if not cap:
        return count
    if sampling["fps"] and info["fps"] > sampling["fps"]:
        return min(count, int(cap * info["fps"] / sampling["fps"]) + 2)
    return min(count, cap * sampling["every"])


class Gone(Exception):
    """The video stopped streaming in this run (ended, cancelled, retried): stop extracting."""


class FramePlanner:
    """A segment's frames as they land, turned into detect chunks: every frame's tiles (less the
    still ones, less those already detected or planned by an earlier copy of this task) gather
    until they hold chunk_seconds of work, then go to Redis as chunks and the fleet is fed."""

    def __init__(self, run: VideoRun, video_dir: Path, settings: AnnotateSettings, v: VideoRecord):
        self.run, self.video_dir, self.settings = run, video_dir, settings
        self.scale = v.scale
        self.tiles = None
        if v.info["width"]:
            self.tiles = pipeline.frame_tiles(v.info["width"], v.info["height"], settings, self.scale)
        self.done = set(tile_cache.kept_tiles(Path(v.cache)))
        for jobs in batch_store.plan(run).values():
            self.done.update((name, tuple(tile)) for name, tile in jobs)
        self.fixed = context.batch(run.batch).tiles_per_task
        self.chunk_ms = 1000 * context.cfg().chunk_seconds
        self.still_planner, self.still, self.gated = None, {}, 0
        self.block, self.cost, self.reused, self.ms_tile, self.ms_frame = [], 0.0, 0, 0.0, 0.0

    def frame(self, name: str, source: int, image) -> None:
        if self.tiles is None:  # a header without the frame size: the first frame tells it
            self.tiles = pipeline.frame_tiles(image.shape[1], image.shape[0], self.settings, self.scale)
        jobs = pipeline.tile_jobs({"frames": [name]}, self.tiles)
        if self.settings.skip_still is not None:
            if self.still_planner is None:
                self.still_planner = StillPlanner(self.video_dir, self.tiles, self.settings.skip_still)
            still = self.still_planner.add(name)
            if still:
                self.still[name] = still
                jobs = gated_jobs(jobs, {name: still})
        self.gated += len(jobs)
        todo = [j for j in jobs if (j[0], tuple(j[1])) not in self.done]
        self.reused += len(jobs) - len(todo)
        if todo and not self.fixed and not self.ms_tile:
            self.ms_tile = context.ms_per_tile(self.settings)
            self.ms_frame = time_frame_read(pipeline.read_frame, self.video_dir / IMAGES_DIR / f"{name}.jpg")
        self.block += todo
        self.cost += len(todo) * self.ms_tile + (self.ms_frame if todo else 0.0)
        if (len(self.block) >= self.fixed) if self.fixed else (self.cost >= self.chunk_ms):
            self.flush()

    def flush(self) -> None:
        if not self.block and not self.reused:
            return
        chunks = []
        if self.block and self.fixed:
            chunks = pipeline.chunk_jobs(self.block, self.fixed)
        elif self.block:
            chunks = plan_chunks(self.block, self.ms_tile, self.ms_frame, context.cfg().chunk_seconds)
        if batch_store.add_chunks(self.run, chunks, self.reused) is None:
            raise Gone()
        self.block, self.cost, self.reused = [], 0.0, 0
        if chunks:
            dispatch.feed()
