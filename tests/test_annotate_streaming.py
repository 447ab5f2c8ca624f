"""Streaming: detect chunks are planned while frames land and labels are written as frames finish.

Through the real Redis of the session fleet, the batch record's own scripts: chunks report in
shuffled orders, each report writes the labels of the frames it completed, and the labels are the
bytes a single-process run writes; the label step then changes none of them.
"""

from __future__ import annotations

import random
import shutil

import pytest

pytestmark = pytest.mark.fleet


def _labels(video_dir):
    return {p.name: p.read_bytes() for p in sorted((video_dir / "labels").glob("*.txt"))}


def test_chunks_done_in_any_order_write_a_single_process_runs_labels_as_frames_complete(fleet, tmp_path):
    from tasks import batch_store
    from tasks.annotate.report import label_early
    from tasks.batch_records import VideoRun
    from tasks.store import client, key
    from vision import pipeline, tile_cache
    from vision.corrections import EARLY_DIR
    from vision.detector import get_detector
    from vision.settings import AnnotateSettings
    from workers import asset_cache

    video = tmp_path / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    settings = AnnotateSettings(model=asset_cache.yolov3_tiny_files(), max_frames=5)
    pipeline.annotate_video(video, tmp_path / "ref", settings)
    reference = _labels(tmp_path / "ref" / "vtest")
    assert len(reference) == 5 and any(reference.values())

    scratch = tmp_path / "scratch"
    meta = pipeline.prepare_video(video, scratch, settings)
    jobs = pipeline.tile_jobs(meta, pipeline.plan_tiles(meta, settings))
    chunks = pipeline.chunk_jobs(jobs, 3)  # 7 tiles a frame: frames cut across two or three chunks
    blocks = [chunks[:4], chunks[4:]]  # planned in two goes, as an extraction adds them
    detector = get_detector(settings.detector_spec())
    results = [pipeline.detect_jobs(scratch, c, detector) for c in chunks]

    for seed in range(3):
        out = tmp_path / f"run{seed}"
        video_dir = out / "vtest"
        shutil.copytree(scratch, video_dir)  # the frames on disk, as the extraction leaves them
        batch_id = batch_store.create_batch(
            [str(video)], [str(video_dir)], str(out), settings.to_json(), None, False, None, [str(tmp_path)]
        )
        run = VideoRun(batch_id, 0, 1)
        assert batch_store.move(run, "extract")
        cache = tile_cache.cache_dir(video_dir, meta, settings.fingerprint("detection"))
        size = {"width": meta["width"], "height": meta["height"]}
        assert batch_store.start_streaming(run, 1, cache=str(cache), **size)
        assert batch_store.add_chunks(run, blocks[0]) == 0
        assert batch_store.add_chunks(run, blocks[1]) == len(blocks[0])
        client().delete(key("batch", batch_id, "pending"))  # this test is the fleet

        seen, order = {}, random.Random(seed).sample(range(len(chunks)), len(chunks))
        for n, c in enumerate(order):
            tile_cache.write_chunk(cache, chunks[c], results[c])
            last, newly = batch_store.chunk_done(run.chunk(c), len(chunks[c]))
            assert not last, "no label step while the plan is open"
            if newly:
                label_early(run, video_dir, cache, newly)
            for name, data in _labels(video_dir).items():
                seen.setdefault(name, (n, data))
            done = set(order[: n + 1])
            for name in _labels(video_dir):  # a frame is labelled only once every chunk holding it is done
                assert all(i in done for i, chunk in enumerate(chunks) if any(j[0] + ".txt" == name for j in chunk))
        assert {name: data for name, (_, data) in seen.items()} == reference, f"order {order}"
        assert (video_dir / EARLY_DIR).is_dir()

        assert batch_store.close_plan(run, frames=5) is True  # all done: the closer sends label
        detections = pipeline.gather_detections([tile_cache.gathered(cache, jobs)])
        pipeline.merge_frames(video_dir, meta, pipeline.complete_detections(video_dir, detections), settings)
        summary = pipeline.finish_video(video_dir, meta, settings)
        assert _labels(video_dir) == reference and summary["corrected_kept"] == 0
        assert not (video_dir / EARLY_DIR).exists()
        batch_store.cancel(batch_id)


@pytest.mark.parametrize("storage", ["redis", "shared"])
def test_a_video_extracted_in_three_segments_by_two_workers_gives_a_single_process_runs_dataset(tmp_path, storage):
    import json

    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache

    from support.fleet import bare_workers, cvfleet

    video = tmp_path / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    settings = AnnotateSettings(every=3, max_frames=24, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    annotate_video(video, tmp_path / "ref", settings)
    ref = tmp_path / "ref" / "vtest"
    extra = {"CVFLEET_SEGMENTS": "3", "CVFLEET_STORAGE": storage}
    with bare_workers(tmp_path, extra, names=("a", "b")) as (env, client, _):
        run = cvfleet(
            "annotate", str(video), "--out", str(tmp_path / "out"), "--every", "3", "--max-frames", "24", env=env
        )
        assert run.returncode == 0, run.stderr + run.stdout
        (record,) = [client.hgetall(k) for k in client.keys("cvfleet:batch:*:video:0")]
    assert len(json.loads(record["bounds"])) == 3 and "streaming" not in record
    out = tmp_path / "out" / "vtest"
    assert _labels(out) == _labels(ref) and len(_labels(out)) == 24
    images = sorted(p.name for p in (ref / "images").glob("*.jpg"))
    assert sorted(p.name for p in (out / "images").glob("*.jpg")) == images
    assert all((out / "images" / n).read_bytes() == (ref / "images" / n).read_bytes() for n in images)
    assert json.loads((out / "video.json").read_text()) == json.loads((ref / "video.json").read_text())
