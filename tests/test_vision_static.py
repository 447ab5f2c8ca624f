"""Static objects: propagated into every frame once, duplicates skipped; suggestions found."""

import re

import pytest

from vision.corrections import settle_labels
from vision.errors import VisionError
from vision.labels import LabelRow, read_yolo_labels
from vision.static import add_static_rows, find_static_rows, learn_ignore, read_static_labels, suppress

SIGN = LabelRow(11, 0.9, 0.1, 0.05, 0.08)  # a stop sign, top right
BENCH = LabelRow(13, 0.2, 0.8, 0.2, 0.1)


def test_static_boxes_are_appended_to_every_frame():
    person = LabelRow(0, 0.5, 0.5, 0.1, 0.3)
    assert add_static_rows([person], [SIGN, BENCH]) == [person, SIGN, BENCH]
    assert add_static_rows([], [SIGN, BENCH]) == [SIGN, BENCH]


def test_second_propagation_changes_no_byte(tmp_path):
    """Label files written with static boxes, written again: same bytes, same mtimes."""
    auto = {"000001": [LabelRow(0, 0.5, 0.5, 0.1, 0.3)], "000002": [], "000003": [BENCH]}
    first = settle_labels(tmp_path, tmp_path / "labels", auto, [SIGN, BENCH])
    files = sorted((tmp_path / "labels").iterdir())
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert read_yolo_labels(tmp_path / "labels" / "000003.txt") == [BENCH, SIGN]
    settle_labels(tmp_path, tmp_path / "labels", auto, [SIGN, BENCH], first.written)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_a_static_box_already_detected_is_not_added_again():
    detected_sign = LabelRow(11, 0.905, 0.1, 0.05, 0.08)  # IoU with SIGN ≈ 0.82
    assert add_static_rows([detected_sign], [SIGN]) == [detected_sign]


def test_a_same_place_box_of_another_class_does_not_block_the_static_box():
    other_class = LabelRow(0, 0.9, 0.1, 0.05, 0.08)
    assert add_static_rows([other_class], [SIGN]) == [other_class, SIGN]


def test_a_same_class_box_overlapping_half_or_less_does_not_block():
    nearby = LabelRow(11, 0.95, 0.1, 0.05, 0.08)  # shares half the width: IoU 1/3
    assert add_static_rows([nearby], [SIGN]) == [nearby, SIGN]


def test_static_negatives_suppress_their_box_in_every_frame_and_nothing_else():
    lamp_seen_as_bird = LabelRow(14, 0.302, 0.2, 0.04, 0.05)
    ignore = [LabelRow(14, 0.3, 0.2, 0.04, 0.05)]
    person_there = LabelRow(0, 0.3, 0.2, 0.04, 0.05)
    bird_elsewhere = LabelRow(14, 0.7, 0.2, 0.04, 0.05)
    assert suppress([lamp_seen_as_bird, person_there, bird_elsewhere], ignore) == [person_there, bird_elsewhere]


def test_learned_negatives_are_deleted_boxes_the_detector_saw_standing_still():
    lamp = LabelRow(14, 0.3, 0.2, 0.04, 0.05)
    auto = {f"{i:06d}": [walking_person(i)] + ([lamp] if i % 2 else []) for i in range(10)}  # half the frames
    kept = {"000001": [walking_person(1)], "000003": [walking_person(3), lamp]}  # deleted in 1, kept in 3
    assert learn_ignore(auto, kept) == [lamp]
    assert learn_ignore(auto, {"000003": [walking_person(3), lamp]}) == []  # never deleted
    assert learn_ignore(auto, {"000002": []}) == []  # deleted where the detector did not see it


def test_a_box_in_place_in_every_frame_is_suggested():
    frames = [[BENCH] for _ in range(10)]
    assert find_static_rows(frames) == [BENCH]


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
