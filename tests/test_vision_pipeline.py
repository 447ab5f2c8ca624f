"""The single-process annotation of a short real clip, and the seams a distributed run uses."""

import json
import random

import pytest

from vision.detector import get_detector
from vision.errors import VisionError
from vision.labels import read_classes, read_yolo_labels
from vision.pipeline import (
    annotate_video,
    chunk_jobs,
    count_classes,
    detect_jobs,
    finish_video,
    format_counts,
    gather_detections,
    merge_frames,
    plan_tiles,
    prepare_video,
    tile_jobs,
    video_out_dir,
)
from vision.settings import AnnotateSettings, ModelSpec
from vision.static import read_statics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(model_fields):
    return AnnotateSettings(every=4, model=ModelSpec(**model_fields))  # frames 0, 4, 8


@pytest.fixture(scope="module")
def reference(clip12, settings, tmp_path_factory):
    """One single-process run, shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("reference")
    summary = annotate_video(clip12, out, settings)
    return out / "clip12", summary


def label_bytes(video_dir):
    return {p.name: p.read_bytes() for p in sorted((video_dir / "labels").iterdir())}


def test_writes_the_dataset_layout(reference):
    video_dir, _ = reference
    assert sorted(p.relative_to(video_dir).as_posix() for p in video_dir.rglob("*")) == [
        "annotation.json",
        "classes.txt",
        "detections.jsonl",
        "images",
        "images/000001.jpg",
        "images/000002.jpg",
        "images/000003.jpg",
        "labels",
        "labels/000001.txt",
        "labels/000002.txt",
        "labels/000003.txt",
        "review.txt",
        "static_suggestions.txt",
        "video.json",
    ]
    assert len(read_classes(video_dir / "classes.txt")) == 80


def test_summary_counts_what_the_label_files_hold(reference, model_fields):
    video_dir, summary = reference
    rows = [r for p in sorted((video_dir / "labels").iterdir()) for r in read_yolo_labels(p)]
    names = read_classes(model_fields["names"])
    # 768x576 in 416 tiles at overlap 0.2: 3x2 tiles, and the full-frame pass (the frame is larger than a tile)
    assert summary["frames"] == 3 and summary["tiles_per_frame"] == 7 and summary["tiles"] == 21
    assert summary["full_frame"] is True
    assert summary["boxes"] == len(rows)
    assert summary["counts"] == count_classes(video_dir / "labels", names)
    assert sum(summary["counts"].values()) == len(rows)
    assert summary["reused"] is False and summary["video_dir"] == str(video_dir)


def test_people_are_labelled_in_every_frame(reference):
    video_dir, _ = reference
    for p in sorted((video_dir / "labels").iterdir()):
        assert sum(r.cls == 0 for r in read_yolo_labels(p)) >= 3


def test_two_runs_write_byte_identical_labels(reference, clip12, settings, tmp_path):
    annotate_video(clip12, tmp_path, settings)
    assert label_bytes(tmp_path / "clip12") == label_bytes(reference[0])


@pytest.mark.parametrize("tiles_per_task", [1, 4, 7])
def test_any_chunking_through_json_gives_the_same_labels(reference, clip12, settings, tmp_path, tiles_per_task):
    """What the Celery canvas does: plan, detect chunks anywhere, gather in any order, label."""
    video_dir = video_out_dir(tmp_path, clip12)
    meta = prepare_video(clip12, video_dir, settings)
    jobs = json.loads(json.dumps(tile_jobs(meta, plan_tiles(meta, settings))))
    detector = get_detector(settings.detector_spec())
    results = [
        json.loads(json.dumps(detect_jobs(video_dir, chunk, detector))) for chunk in chunk_jobs(jobs, tiles_per_task)
    ]
    random.Random(tiles_per_task).shuffle(results)
    merge_frames(video_dir, meta, gather_detections(results), settings)
    finish_video(video_dir, meta, settings)
    assert label_bytes(video_dir) == label_bytes(reference[0])
    assert (video_dir / "annotation.json").read_bytes() == (reference[0] / "annotation.json").read_bytes().replace(
        str(reference[0]).encode(), str(video_dir).encode()
    )


def test_resubmission_reuses_frames_and_labels(clip12, settings, tmp_path):
    annotate_video(clip12, tmp_path, settings)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "clip12").rglob("*")}
    again = annotate_video(clip12, tmp_path, settings)
    assert again["reused"] is True
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "clip12").rglob("*")} == stamps


def test_other_settings_relabel(clip12, settings, tmp_path):
    first = annotate_video(clip12, tmp_path, settings)
    strict = AnnotateSettings.from_json({**settings.to_json(), "conf": 0.6})
    second = annotate_video(clip12, tmp_path, strict)
    assert second["reused"] is False and second["boxes"] < first["boxes"]


def test_static_labels_go_into_every_frame(clip12, settings, tmp_path):
    static = tmp_path / "static_labels.txt"
    static.write_text("11 0.500000 0.050000 0.020000 0.030000\n")
    summary = annotate_video(clip12, tmp_path / "out", settings, static=static)
    assert summary["static_boxes"] == 1
    for p in sorted((tmp_path / "out" / "clip12" / "labels").iterdir()):
        assert read_yolo_labels(p)[-1] == (11, 0.5, 0.05, 0.02, 0.03)
    assert annotate_video(clip12, tmp_path / "out", settings, static=static)["reused"] is True


def test_finishing_twice_writes_the_same_bytes(clip12, settings, tmp_path):
    """A redelivered finish task must not suggest the static boxes it propagated the first time."""
    static = tmp_path / "static_labels.txt"
    static.write_text("11 0.500000 0.050000 0.020000 0.030000\n")
    annotate_video(clip12, tmp_path / "out", settings, static=static)
    video_dir = tmp_path / "out" / "clip12"
    before = {p: p.read_bytes() for p in sorted(video_dir.rglob("*.*"))}
    meta = json.loads((video_dir / "video.json").read_text())
    finish_video(video_dir, meta, settings, read_statics(static))
    assert {p: p.read_bytes() for p in sorted(video_dir.rglob("*.*"))} == before
    assert b"11 0.500000" not in (video_dir / "static_suggestions.txt").read_bytes()


def test_malformed_static_labels_fail_before_any_work(clip12, settings, tmp_path):
    static = tmp_path / "static_labels.txt"
    static.write_text("11 0.5 0.05\n")
    with pytest.raises(VisionError, match="static_labels.txt:1: expected 5 fields"):
        annotate_video(clip12, tmp_path / "out", settings, static=static)
    assert not (tmp_path / "out").exists()


def test_progress_reports_frames_then_tiles(clip12, settings, tmp_path):
    events = []
    annotate_video(clip12, tmp_path, settings, progress=lambda *e: events.append(e))
    assert events == [("frames", 3, 3), ("tiles", 7, 21), ("tiles", 14, 21), ("tiles", 21, 21)]


def test_fewer_frames_remove_the_labels_of_frames_gone(clip12, settings, tmp_path):
    annotate_video(clip12, tmp_path, settings)
    fewer = AnnotateSettings.from_json({**settings.to_json(), "max_frames": 2})
    annotate_video(clip12, tmp_path, fewer)
    assert sorted(p.name for p in (tmp_path / "clip12" / "labels").iterdir()) == ["000001.txt", "000002.txt"]


def test_detections_for_unknown_frames_are_refused(clip12, settings, tmp_path):
    meta = prepare_video(clip12, tmp_path, settings)
    with pytest.raises(VisionError, match="not in video.json"):
        merge_frames(tmp_path, meta, {"000099": []}, settings)


def test_chunks_hold_at_most_the_given_number_of_tiles():
    assert chunk_jobs(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(VisionError, match="tiles per task"):
        chunk_jobs([1], 0)


def test_counts_print_as_aligned_lines():
    assert format_counts({"person": 120, "traffic light": 3}) == "person         120\ntraffic light  3\n"
    assert format_counts({}) == "no boxes\n"


def test_a_merge_only_change_re_merges_from_detections_jsonl_without_yolo(clip12, settings, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from vision import pipeline

    greedy = dataclasses.replace(settings, merge="greedy", merge_threshold=0.3)
    fresh = annotate_video(clip12, tmp_path / "fresh", greedy)  # YOLO, straight to the greedy labels
    assert not fresh["remerged"]
    annotate_video(clip12, tmp_path / "rerun", settings)
    shutil.copytree(tmp_path / "rerun", tmp_path / "first")

    def no_yolo(spec):
        raise AssertionError("the detector was called")

    monkeypatch.setattr("vision.detector.get_detector", no_yolo)
    monkeypatch.setattr(pipeline, "detect_jobs", no_yolo)
    remerged = annotate_video(clip12, tmp_path / "rerun", greedy)
    assert remerged["remerged"] and not remerged["reused"]
    assert label_bytes(tmp_path / "rerun" / "clip12") == label_bytes(tmp_path / "fresh" / "clip12")
    assert (tmp_path / "rerun" / "clip12" / "detections.jsonl").read_bytes() == (
        tmp_path / "fresh" / "clip12" / "detections.jsonl"
    ).read_bytes()
    back = annotate_video(clip12, tmp_path / "rerun", settings)  # and back again, still no YOLO
    assert back["remerged"]
    assert label_bytes(tmp_path / "rerun" / "clip12") == label_bytes(tmp_path / "first" / "clip12")


def test_detections_jsonl_holds_every_label_with_its_confidence_and_tiles(reference):
    from vision.detections import merged_boxes, raw_detections, read_detections
    from vision.labels import box_to_row, format_labels

    video_dir, summary = reference
    records = read_detections(video_dir / "detections.jsonl")
    assert list(records) == ["000001", "000002", "000003"]
    for name, record in records.items():
        merged = merged_boxes(record)
        label = (video_dir / "labels" / f"{name}.txt").read_text()
        assert format_labels([box_to_row(b, 768, 576) for b, _ in merged]) == label
        assert all(0 < b.conf <= 1 and tiles for b, tiles in merged)
        assert len(raw_detections(record)) == summary["tiles_per_frame"]


def test_a_strict_run_refuses_a_truncated_video_and_a_tolerant_one_warns(clip12, settings, tmp_path):
    import dataclasses

    half = tmp_path / "half.avi"
    half.write_bytes(clip12.read_bytes()[: clip12.stat().st_size // 2])
    with pytest.raises(VisionError, match=r"truncated video: header says 12 frames, \d+ decoded"):
        annotate_video(half, tmp_path / "strict", dataclasses.replace(settings, strict=True))
    summary = annotate_video(half, tmp_path / "tolerant", settings)
    assert summary["warning"].startswith("header says 12 frames, ") and summary["truncated"]


def test_temporal_settings_re_merge_without_yolo_and_mark_filled_boxes(clip12, model_fields, tmp_path, monkeypatch):
    import dataclasses

    from vision.detections import read_detections

    every = AnnotateSettings(every=1, max_frames=8, model=ModelSpec(**model_fields))
    both = dataclasses.replace(every, temporal="both", fill_gap=2)
    fresh = annotate_video(clip12, tmp_path / "fresh", both)
    annotate_video(clip12, tmp_path / "rerun", every)

    def no_yolo(spec):
        raise AssertionError("the detector was called")

    monkeypatch.setattr("vision.detector.get_detector", no_yolo)
    again = annotate_video(clip12, tmp_path / "rerun", both)
    assert again["remerged"] and again["boxes"] == fresh["boxes"]
    assert label_bytes(tmp_path / "rerun" / "clip12") == label_bytes(tmp_path / "fresh" / "clip12")
    records = read_detections(tmp_path / "fresh" / "clip12" / "detections.jsonl")
    filled = [b for r in records.values() for b in r["boxes"] if b.get("filled")]
    assert all(b["tiles"] == [] for b in filled)


def test_skip_still_runs_yolo_only_on_tiles_that_changed(clip12, model_fields, tmp_path, monkeypatch):
    import dataclasses

    from vision import pipeline

    settings = AnnotateSettings(every=4, model=ModelSpec(**model_fields), skip_still=200.0)  # all is still
    calls = []
    real = pipeline.detect_jobs
    monkeypatch.setattr(pipeline, "detect_jobs", lambda d, jobs, det: calls.append(len(jobs)) or real(d, jobs, det))
    summary = annotate_video(clip12, tmp_path, settings)
    assert sum(calls) == summary["tiles_per_frame"]  # the first frame's tiles only
    labels = label_bytes(tmp_path / "clip12")
    assert labels["000002.txt"] == labels["000001.txt"] == labels["000003.txt"]
    assert (tmp_path / "clip12" / "still_tiles.json").is_file()
    off = annotate_video(clip12, tmp_path, dataclasses.replace(settings, skip_still=None))
    assert not off["remerged"] and not (tmp_path / "clip12" / "still_tiles.json").exists()
