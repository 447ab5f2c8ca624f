"""Detect tasks sized by time, and the boxes each keeps on disk: labels never depend on the cut."""

import json
import random

import pytest

from vision import tile_cache
from vision.chunking import job_costs, plan_chunks, time_detector
from vision.detector import get_detector
from vision.errors import VisionError
from vision.pipeline import (
    annotate_video,
    detect_jobs,
    finish_video,
    gather_detections,
    merge_frames,
    plan_tiles,
    prepare_video,
    tile_jobs,
    video_out_dir,
)
from vision.settings import AnnotateSettings, ModelSpec


def frames(n_frames: int, tiles_per_frame: int) -> list:
    return [[f"{f:06d}", [t, 0, 10, 10]] for f in range(1, n_frames + 1) for t in range(tiles_per_frame)]


def seconds(chunk, ms_tile, ms_frame) -> float:
    return sum(job_costs(chunk, ms_tile, ms_frame)) / 1000


def test_one_huge_frame_becomes_many_tasks_of_two_to_four_seconds():
    jobs = frames(1, 600)  # one 8K frame cut into 600 tiles, 50 ms each: 30 s of work
    chunks = plan_chunks(jobs, 50.0, 40.0)
    assert len(chunks) == 15
    assert [j for c in chunks for j in c] == jobs
    assert all(2.0 <= seconds(c, 50.0, 40.0) < 4.0 for c in chunks)


def test_many_tiny_frames_become_one_task():
    jobs = frames(150, 1)  # 150 tiny frames, 1 tile each: 10 ms forward + 2 ms read = 1.8 s
    assert plan_chunks(jobs, 10.0, 2.0) == [jobs]


@pytest.mark.parametrize(("n_frames", "tiles", "ms_tile", "ms_frame"), [(40, 7, 52.0, 6.0), (130, 31, 9.5, 1.0)])
def test_every_task_holds_two_to_four_seconds_in_order(n_frames, tiles, ms_tile, ms_frame):
    jobs = frames(n_frames, tiles)
    chunks = plan_chunks(jobs, ms_tile, ms_frame)
    assert [j for c in chunks for j in c] == jobs
    assert all(2.0 <= seconds(c, ms_tile, ms_frame) < 4.0 + ms_frame / 1000 for c in chunks)


def test_a_longer_minimum_makes_fewer_tasks():
    jobs = frames(40, 7)
    assert len(plan_chunks(jobs, 50.0, 0.0, min_seconds=4.0)) == 3
    assert len(plan_chunks(jobs, 50.0, 0.0, min_seconds=2.0)) == 7


def test_a_speed_that_is_not_positive_is_refused():
    with pytest.raises(VisionError, match="ms_per_tile > 0"):
        plan_chunks(frames(1, 1), 0.0)


def test_the_detector_is_timed_per_tile(model_fields):
    ms = time_detector(get_detector(AnnotateSettings(model=ModelSpec(**model_fields)).detector_spec()), runs=2)
    assert 1.0 < ms < 5000.0


@pytest.fixture(scope="module")
def settings(model_fields):
    return AnnotateSettings(every=4, model=ModelSpec(**model_fields))


@pytest.mark.slow
@pytest.mark.parametrize("ms_tile", [25.0, 200.0, 800.0])  # 1 task per clip, frames split, single tiles
def test_time_sized_chunks_kept_on_disk_give_the_labels_of_one_process(clip12, settings, tmp_path, ms_tile):
    reference = tmp_path / "reference"
    annotate_video(clip12, reference, settings)
    video_dir = video_out_dir(tmp_path / "chunked", clip12)
    meta = prepare_video(clip12, video_dir, settings)
    jobs = json.loads(json.dumps(tile_jobs(meta, plan_tiles(meta, settings))))
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    detector = get_detector(settings.detector_spec())
    chunks = plan_chunks(jobs, ms_tile, 0.0)
    random.Random(len(chunks)).shuffle(chunks)
    for chunk in chunks:
        tile_cache.write_chunk(cache, chunk, detect_jobs(video_dir, chunk, detector))
    tile_cache.write_chunk(cache, chunks[0], detect_jobs(video_dir, chunks[0], detector))  # a chunk run twice
    assert tile_cache.missing_jobs(cache, jobs) == []
    merge_frames(video_dir, meta, gather_detections([tile_cache.gathered(cache, jobs)]), settings)
    finish_video(video_dir, meta, settings)
    for name in sorted(p.name for p in (reference / "clip12" / "labels").iterdir()):
        assert (video_dir / "labels" / name).read_bytes() == (reference / "clip12" / "labels" / name).read_bytes()


def test_only_tiles_without_kept_boxes_are_missing(clip12, settings, tmp_path):
    video_dir = video_out_dir(tmp_path, clip12)
    meta = prepare_video(clip12, video_dir, settings)
    jobs = json.loads(json.dumps(tile_jobs(meta, plan_tiles(meta, settings))))
    cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
    tile_cache.write_chunk(cache, jobs[:5], detect_jobs(video_dir, jobs[:5], get_detector(settings.detector_spec())))
    assert tile_cache.missing_jobs(cache, jobs) == jobs[5:]
    with pytest.raises(VisionError, match="every worker must see the same storage root"):
        tile_cache.gathered(cache, jobs)
    other = AnnotateSettings.from_json({**settings.to_json(), "conf": 0.6})
    assert tile_cache.cache_dir(video_dir, meta, other.fingerprint("detection")) != cache
