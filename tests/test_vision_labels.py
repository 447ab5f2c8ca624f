"""YOLO label files: normalized 'class cx cy w h' lines, six decimals, exact round trip."""

import pytest

from vision.boxes import Box
from vision.errors import VisionError
from vision.labels import (
    LabelRow,
    box_to_row,
    read_classes,
    read_yolo_labels,
    row_to_box,
    write_classes,
    write_yolo_labels,
    write_yolo_rows,
)


def test_boxes_are_written_normalized_with_six_decimals(tmp_path):
    path = tmp_path / "000001.txt"
    write_yolo_labels(path, [Box(0, 0.9, 192.0, 144.0, 384.0, 432.0), Box(7, 0.5, 0.0, 0.0, 100.0, 50.0)], 768, 576)
    assert path.read_text() == ("0 0.375000 0.500000 0.250000 0.500000\n7 0.065104 0.043403 0.130208 0.086806\n")


def test_no_boxes_write_an_empty_file(tmp_path):
    path = tmp_path / "000002.txt"
    write_yolo_labels(path, [], 768, 576)
    assert path.read_bytes() == b""


def test_boxes_outside_the_frame_are_clipped_to_it(tmp_path):
    assert box_to_row(Box(0, 1.0, -10.0, 500.0, 100.0, 600.0), 768, 576) == LabelRow(
        0, 0.065104, 0.934028, 0.130208, 0.131944
    )


def test_boxes_empty_at_label_precision_are_left_out(tmp_path):
    path = tmp_path / "z.txt"
    write_yolo_labels(
        path,
        [Box(0, 0.9, 767.9999, 10.0, 768.0, 50.0), Box(0, 0.8, -0.0, 0.0, 0.0, 9.0), Box(0, 0.7, 0.0, 0.0, 76.8, 57.6)],
        768,
        576,
    )
    assert path.read_text() == "0 0.050000 0.050000 0.100000 0.100000\n"
    assert read_yolo_labels(path) == [(0, 0.05, 0.05, 0.1, 0.1)]


def test_read_returns_the_rows(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.375000 0.500000 0.250000 0.500000\n\n14 0.1 0.2 0.05 0.06\n")
    assert read_yolo_labels(path) == [(0, 0.375, 0.5, 0.25, 0.5), (14, 0.1, 0.2, 0.05, 0.06)]


def test_round_trip_is_byte_exact(tmp_path):
    first, second = tmp_path / "1.txt", tmp_path / "2.txt"
    write_yolo_labels(
        first,
        [
            Box(0, 0.74, 380.3904829621315, 208.9650855064392, 399.7087487578392, 247.76192331314087),
            Box(2, 0.6, 700.123456789, 50.987654321, 767.5, 90.25),
        ],
        768,
        576,
    )
    rows = read_yolo_labels(first)
    write_yolo_rows(second, rows)
    assert second.read_bytes() == first.read_bytes()
    assert read_yolo_labels(second) == rows
    assert [box_to_row(row_to_box(r, 768, 576), 768, 576) for r in rows] == rows


def test_rewriting_the_same_rows_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "1.txt"
    rows = [LabelRow(0, 0.5, 0.5, 0.1, 0.2)]
    assert write_yolo_rows(path, rows) is True
    assert write_yolo_rows(path, rows) is False
    assert [p.name for p in tmp_path.iterdir()] == ["1.txt"]


@pytest.mark.parametrize(
    "line,reason",
    [
        ("0 0.5 0.5 0.1", "expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1 0.9", "expected 5 fields"),
        ("person 0.5 0.5 0.1 0.1", "class must be a non-negative integer"),
        ("-1 0.5 0.5 0.1 0.1", "class must be a non-negative integer"),
        ("0 0.5 half 0.1 0.1", "coordinates must be numbers"),
        ("0 1.5 0.5 0.1 0.1", "normalized to 0..1"),
        ("0 0.5 0.5 nan 0.1", "normalized to 0..1"),
        ("0 0.5 0.5 0.0 0.1", "width and height must be > 0"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, reason):
    path = tmp_path / "bad.txt"
    path.write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(VisionError) as err:
        read_yolo_labels(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: ") and reason in message and "\n" not in message


def test_unreadable_label_file_raises_vision_error(tmp_path):
    with pytest.raises(VisionError, match="cannot read label file"):
        read_yolo_labels(tmp_path / "missing.txt")


def test_classes_file_has_one_name_per_line(tmp_path):
    path = tmp_path / "classes.txt"
    write_classes(path, ["person", "bicycle", "traffic light"])
    assert path.read_text() == "person\nbicycle\ntraffic light\n"
    assert read_classes(path) == ["person", "bicycle", "traffic light"]


def test_empty_classes_file_raises_vision_error(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("\n")
    with pytest.raises(VisionError, match="empty"):
        read_classes(path)
