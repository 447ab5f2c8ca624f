"""Static objects: propagated into every frame once, duplicates skipped; suggestions found."""

import re

import pytest

from vision.errors import VisionError
from vision.labels import LabelRow, format_labels, read_yolo_labels
from vision.static import find_static_rows, propagate_static, read_static_labels, suggest_static

SIGN = LabelRow(11, 0.9, 0.1, 0.05, 0.08)  # a stop sign, top right
BENCH = LabelRow(13, 0.2, 0.8, 0.2, 0.1)


def make_labels(tmp_path, frames):
    labels = tmp_path / "labels"
    labels.mkdir()
    for i, rows in enumerate(frames, start=1):
        (labels / f"{i:06d}.txt").write_text(format_labels(rows))
    return labels


def snapshot(labels):
    return {p.name: p.read_bytes() for p in sorted(labels.iterdir())}


def test_static_boxes_are_appended_to_every_frame(tmp_path):
    person = LabelRow(0, 0.5, 0.5, 0.1, 0.3)
    labels = make_labels(tmp_path, [[person], []])
    assert propagate_static(labels, [SIGN, BENCH]) == 4
    assert read_yolo_labels(labels / "000001.txt") == [person, SIGN, BENCH]
    assert read_yolo_labels(labels / "000002.txt") == [SIGN, BENCH]


def test_second_propagation_changes_no_byte(tmp_path):
    labels = make_labels(tmp_path, [[LabelRow(0, 0.5, 0.5, 0.1, 0.3)], [], [BENCH]])
    propagate_static(labels, [SIGN, BENCH])
    before = snapshot(labels)
    mtimes = {p.name: p.stat().st_mtime_ns for p in labels.iterdir()}
    assert propagate_static(labels, [SIGN, BENCH]) == 0
    assert snapshot(labels) == before
    assert {p.name: p.stat().st_mtime_ns for p in labels.iterdir()} == mtimes


def test_a_static_box_already_detected_is_not_added_again(tmp_path):
    detected_sign = LabelRow(11, 0.905, 0.1, 0.05, 0.08)  # IoU with SIGN ≈ 0.82
    labels = make_labels(tmp_path, [[detected_sign]])
    assert propagate_static(labels, [SIGN]) == 0
    assert read_yolo_labels(labels / "000001.txt") == [detected_sign]


def test_a_same_place_box_of_another_class_does_not_block_the_static_box(tmp_path):
    other_class = LabelRow(0, 0.9, 0.1, 0.05, 0.08)
    labels = make_labels(tmp_path, [[other_class]])
    assert propagate_static(labels, [SIGN]) == 1
    assert read_yolo_labels(labels / "000001.txt") == [other_class, SIGN]


def test_a_same_class_box_overlapping_half_or_less_does_not_block(tmp_path):
    nearby = LabelRow(11, 0.95, 0.1, 0.05, 0.08)  # shares half the width: IoU 1/3
    labels = make_labels(tmp_path, [[nearby]])
    assert propagate_static(labels, [SIGN]) == 1


def test_only_frame_label_files_are_touched(tmp_path):
    labels = make_labels(tmp_path, [[]])
    (labels / "notes.txt").write_text("not a label file\n")
    propagate_static(labels, [SIGN])
    assert (labels / "notes.txt").read_text() == "not a label file\n"


def test_suggestions_leave_out_the_ignored_static_rows(tmp_path):
    labels = make_labels(tmp_path, [[BENCH, SIGN] for _ in range(10)])
    assert suggest_static(labels, ignore=[SIGN]) == [BENCH]


def test_static_rows_are_rounded_to_label_precision(tmp_path):
    path = tmp_path / "static_labels.txt"
    path.write_text("11 0.90000049 0.1 0.05 0.08\n")
    assert read_static_labels(path) == [LabelRow(11, 0.9, 0.1, 0.05, 0.08)]


def test_read_static_labels(tmp_path):
    path = tmp_path / "static_labels.txt"
    path.write_text("11 0.900000 0.100000 0.050000 0.080000\n13 0.2 0.8 0.2 0.1\n")
    assert read_static_labels(path) == [SIGN, BENCH]


def test_missing_static_labels_raise_a_one_line_vision_error(tmp_path):
    with pytest.raises(VisionError, match=r"static labels file not found: .*static_labels.txt"):
        read_static_labels(tmp_path / "static_labels.txt")


def test_binary_static_labels_raise_vision_error(tmp_path):
    path = tmp_path / "static_labels.txt"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(VisionError, match="cannot read static labels"):
        read_static_labels(path)


def test_malformed_static_labels_name_file_and_line(tmp_path):
    path = tmp_path / "static_labels.txt"
    path.write_text("11 0.9 0.1 0.05 0.08\n13 0.2 0.8 0.2\n")
    with pytest.raises(VisionError, match="^" + re.escape(f"{path}:2: expected 5 fields")):
        read_static_labels(path)


def walking_person(i):
    return LabelRow(0, round(0.1 + 0.08 * i, 6), 0.5, 0.05, 0.2)


def test_a_box_in_place_in_nine_of_ten_frames_is_suggested():
    frames = [[walking_person(i)] + ([SIGN] if i != 3 else []) for i in range(10)]
    assert find_static_rows(frames, iou=0.7, min_fraction=0.9) == [SIGN]


def test_a_box_in_place_in_eight_of_ten_frames_is_not_suggested():
    frames = [[SIGN] if i not in (3, 7) else [] for i in range(10)]
    assert find_static_rows(frames, iou=0.7, min_fraction=0.9) == []


def test_a_jittering_box_is_suggested_at_its_median_place():
    jitter = [0.0, 0.002, -0.002, 0.001, -0.001]
    frames = [[LabelRow(13, round(0.2 + d, 6), 0.8, 0.2, 0.1)] for d in jitter]
    assert find_static_rows(frames, iou=0.7, min_fraction=0.9) == [BENCH]


def test_a_box_counts_once_per_frame():
    frames = [[SIGN, SIGN]] + [[] for _ in range(9)]
    assert find_static_rows(frames, iou=0.7, min_fraction=0.2) == []


def test_suggestions_are_written_to_the_given_file(tmp_path):
    labels = make_labels(tmp_path, [[walking_person(i), BENCH, SIGN] for i in range(10)])
    out = tmp_path / "static_suggestions.txt"
    assert suggest_static(labels, out_path=out) == [BENCH, SIGN]
    assert out.read_text() == ("13 0.200000 0.800000 0.200000 0.100000\n11 0.900000 0.100000 0.050000 0.080000\n")
