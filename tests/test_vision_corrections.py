"""A person's corrections survive every re-run: kept, static boxes still added, new boxes beside them."""

import dataclasses
import json

import pytest

from vision import pipeline
from vision.corrections import AUTO_DIR, BACKUP_PREFIX, ORPHANED_DIR, content_sha256, settle_labels
from vision.errors import VisionError
from vision.labels import LabelRow, format_labels, read_yolo_labels
from vision.pipeline import annotate_video
from vision.settings import AnnotateSettings, ModelSpec

PERSON = LabelRow(0, 0.5, 0.5, 0.1, 0.3)
CAR = LabelRow(2, 0.2, 0.8, 0.2, 0.1)
SIGN = LabelRow(11, 0.9, 0.1, 0.05, 0.05)


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_labels(rows))


# --- the rule, on files alone ---


def test_files_cvfleet_wrote_are_rewritten_and_recorded(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON], "000002": []})
    assert first.kept == [] and set(first.written) == {"000001", "000002"}
    second = settle_labels(tmp_path, labels, {"000001": [CAR], "000002": [PERSON]}, recorded=first.written)
    assert second.kept == []
    assert read_yolo_labels(labels / "000001.txt") == [CAR]
    assert second.written["000001"] == content_sha256(format_labels([CAR]).encode())


def test_a_corrected_file_is_kept_statics_added_and_the_new_boxes_go_beside_it(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON], "000002": [PERSON]})
    write(labels / "000001.txt", [CAR])  # the person replaced the person box with a car
    done = settle_labels(tmp_path, labels, {"000001": [PERSON], "000002": [PERSON]}, [SIGN], first.written)
    assert done.kept == ["000001"] and "000001" not in done.written
    assert read_yolo_labels(labels / "000001.txt") == [CAR, SIGN]
    assert read_yolo_labels(tmp_path / AUTO_DIR / "000001.txt") == [PERSON, SIGN]
    assert read_yolo_labels(labels / "000002.txt") == [PERSON, SIGN]
    again = settle_labels(tmp_path, labels, {"000001": [PERSON], "000002": [PERSON]}, [SIGN], done.written)
    assert again.kept == ["000001"]  # still a person's: its hash was never recorded as cvfleet's
    assert read_yolo_labels(labels / "000001.txt") == [CAR, SIGN]  # the static box is not added twice


def test_a_redelivered_label_step_does_not_take_its_own_files_for_corrections(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON]})
    write(labels / "000001.txt", [CAR])  # new automatic boxes written, then the step died
    assert settle_labels(tmp_path, labels, {"000001": [CAR]}, [SIGN], first.written).kept == []
    write(labels / "000001.txt", [CAR, SIGN])  # died after the static boxes went in
    assert settle_labels(tmp_path, labels, {"000001": [CAR]}, [SIGN], first.written).kept == []


def test_a_label_file_with_no_record_is_a_persons(tmp_path):
    labels = tmp_path / "labels"
    write(labels / "000001.txt", [CAR])
    done = settle_labels(tmp_path, labels, {"000001": [PERSON]})
    assert done.kept == ["000001"] and read_yolo_labels(labels / "000001.txt") == [CAR]


def test_overwrite_copies_the_corrections_to_a_backup_first(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON]})
    write(labels / "000001.txt", [CAR])
    done = settle_labels(tmp_path, labels, {"000001": [PERSON]}, recorded=first.written, overwrite=True)
    assert done.overwritten == ["000001"] and done.kept == []
    assert done.backup.name.startswith(BACKUP_PREFIX)
    assert read_yolo_labels(done.backup / "000001.txt") == [CAR]
    assert read_yolo_labels(labels / "000001.txt") == [PERSON]
    assert not (tmp_path / AUTO_DIR).exists()


def test_a_corrected_frame_no_longer_sampled_is_moved_aside_not_deleted(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON], "000005": [PERSON], "000009": [PERSON]})
    write(labels / "000005.txt", [CAR])
    done = settle_labels(tmp_path, labels, {"000001": [PERSON]}, recorded=first.written)
    assert sorted(p.name for p in labels.iterdir()) == ["000001.txt"]
    assert done.orphaned == ["000005"]
    assert read_yolo_labels(tmp_path / ORPHANED_DIR / "000005.txt") == [CAR]


def test_a_broken_correction_is_reported_with_file_and_line_and_nothing_changes(tmp_path):
    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON], "000002": [PERSON]})
    (labels / "000002.txt").write_text("0 0.5 0.5 0.1 0.3\n0 0.5 oops 0.1\n")
    before = {p.name: p.read_bytes() for p in labels.iterdir()}
    with pytest.raises(VisionError, match=r"000002\.txt:2: expected 5 fields"):
        settle_labels(tmp_path, labels, {"000001": [CAR], "000002": [CAR]}, [SIGN], first.written)
    assert {p.name: p.read_bytes() for p in labels.iterdir()} == before
    assert not (tmp_path / AUTO_DIR).exists()


# --- through a real annotation run ---


@pytest.fixture(scope="module")
def settings(model_fields):
    return AnnotateSettings(every=4, model=ModelSpec(**model_fields))  # frames 1, 5, 9 -> 000001..000003


def no_yolo(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("YOLO or the merge ran")

    monkeypatch.setattr("vision.detector.get_detector", refuse)
    monkeypatch.setattr(pipeline, "detect_jobs", refuse)
    monkeypatch.setattr(pipeline, "merge_frame", refuse)


@pytest.mark.slow
def test_a_static_only_re_run_keeps_corrections_and_runs_no_yolo_and_no_merge(clip12, settings, tmp_path, monkeypatch):
    annotate_video(clip12, tmp_path, settings)
    video_dir = tmp_path / "clip12"
    labels = video_dir / "labels"
    auto_2 = read_yolo_labels(labels / "000002.txt")
    corrected = auto_2[:1]  # the person deleted every box but the first
    write(labels / "000002.txt", corrected)
    static = tmp_path / "static_labels.txt"
    write(static, [SIGN])

    no_yolo(monkeypatch)
    summary = annotate_video(clip12, tmp_path, settings, static=static)
    assert summary["relabelled"] and not summary["remerged"] and summary["corrected_kept"] == 1
    assert read_yolo_labels(labels / "000002.txt") == [*corrected, SIGN]
    assert read_yolo_labels(video_dir / AUTO_DIR / "000002.txt") == [*auto_2, SIGN]
    assert read_yolo_labels(labels / "000001.txt")[-1] == SIGN
    record = json.loads((video_dir / "annotation.json").read_text())
    assert sorted(record["label_sha256"]) == ["000001", "000003"]

    reused = annotate_video(clip12, tmp_path, settings, static=static)  # nothing changed
    assert reused["reused"] and reused["corrected_kept"] == 1
    monkeypatch.undo()  # a merge option changed: the merge runs again, and the correction still stays
    remerged = annotate_video(clip12, tmp_path, dataclasses.replace(settings, merge="greedy"), static=static)
    assert remerged["corrected_kept"] == 1 and read_yolo_labels(labels / "000002.txt") == [*corrected, SIGN]


@pytest.mark.slow
def test_overwrite_corrections_rewrites_them_after_a_backup(clip12, settings, tmp_path):
    fresh = annotate_video(clip12, tmp_path, settings)
    labels = tmp_path / "clip12" / "labels"
    auto_1 = labels.joinpath("000001.txt").read_bytes()
    write(labels / "000001.txt", [CAR])
    summary = annotate_video(clip12, tmp_path, dataclasses.replace(settings, overwrite_corrections=True))
    assert summary["corrected_overwritten"] == 1 and summary["corrected_kept"] == 0
    assert labels.joinpath("000001.txt").read_bytes() == auto_1
    assert summary["boxes"] == fresh["boxes"]
    backups = list((tmp_path / "clip12").glob(BACKUP_PREFIX + "*"))
    assert len(backups) == 1 and read_yolo_labels(backups[0] / "000001.txt") == [CAR]


@pytest.mark.slow
def test_learn_static_proposes_a_deleted_standing_box_and_static_ignore_suppresses_it(clip12, settings, tmp_path):
    from vision.static import IGNORE_SUGGESTIONS_NAME, find_static_rows, suppress

    annotate_video(clip12, tmp_path, settings)
    video_dir = tmp_path / "clip12"
    labels = video_dir / "labels"
    frames = [read_yolo_labels(p) for p in sorted(labels.iterdir())]
    standing = find_static_rows(frames, 0.7, 0.9)[0]  # a parked vehicle, in every frame
    first = read_yolo_labels(labels / "000001.txt")
    kept_rows = suppress(first, [standing])
    write(labels / "000001.txt", kept_rows)  # the person deleted the vehicle: it is a poster

    learned = annotate_video(clip12, tmp_path, dataclasses.replace(settings, learn_static=True))
    assert learned["ignore_suggestions"] == 1 and learned["corrected_kept"] == 1
    suggestion = video_dir / IGNORE_SUGGESTIONS_NAME
    (proposed,) = read_yolo_labels(suggestion)
    assert suppress([standing], [proposed]) == []

    ignored = annotate_video(clip12, tmp_path, settings, static_ignore=suggestion)
    assert ignored["relabelled"] and ignored["static_ignored"] == 1
    for name in ("000002.txt", "000003.txt"):
        rows = read_yolo_labels(labels / name)
        assert rows and suppress(rows, [standing]) == rows
    assert read_yolo_labels(labels / "000001.txt") == kept_rows


# --- labels written early, while a streamed run goes on ---


def test_early_labels_skip_a_persons_file_and_stay_cvfleets_if_the_run_stops_before_annotation_json(tmp_path):
    from vision.corrections import EARLY_DIR, recorded_hashes, write_early

    labels = tmp_path / "labels"
    write(labels / "000002.txt", [CAR])  # a person's file: no record of it anywhere
    written = write_early(tmp_path, labels, {"000001": [PERSON], "000002": [PERSON]}, [SIGN])
    assert written == ["000001"]
    assert read_yolo_labels(labels / "000002.txt") == [CAR]  # left for the final settle
    assert read_yolo_labels(labels / "000001.txt") == [PERSON, SIGN]
    assert (tmp_path / EARLY_DIR).is_dir()
    # the run stops here; the next run (other boxes) finds 000001 cvfleet's, 000002 a person's
    settled = settle_labels(
        tmp_path, labels, {"000001": [CAR], "000002": [CAR, PERSON]}, [SIGN], recorded_hashes(tmp_path / "x.json")
    )
    assert settled.kept == ["000002"]
    assert read_yolo_labels(labels / "000001.txt") == [CAR, SIGN]


def test_early_labels_rewrite_only_files_cvfleet_wrote(tmp_path):
    from vision.corrections import recorded_hashes, write_early

    labels = tmp_path / "labels"
    first = settle_labels(tmp_path, labels, {"000001": [PERSON]})
    (tmp_path / "annotation.json").write_text(json.dumps({"label_sha256": first.written}))
    assert write_early(tmp_path, labels, {"000001": [CAR]}, (), recorded_hashes(tmp_path / "annotation.json")) == [
        "000001"
    ]
    assert read_yolo_labels(labels / "000001.txt") == [CAR]
