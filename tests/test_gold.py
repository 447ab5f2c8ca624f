"""The gold set's loader and the one-line errors of its bad input (benchmarks/gold_set.py), the
native-large mosaic's (benchmarks/native_large.py), and bench_gold's COCO scoring, on small files."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_gold  # noqa: E402
import gold_set  # noqa: E402
import native_large  # noqa: E402

from vision.boxes import Box  # noqa: E402


def make_gold(tmp_path, labels: dict, images=(), classes=("person", "car")) -> tuple[Path, Path]:
    """A gold dir with classes.txt and labels/NAME.txt, and an images dir with a 40x20 NAME.png each."""
    gold, imgs = tmp_path / "gold", tmp_path / "images"
    (gold / "labels").mkdir(parents=True)
    imgs.mkdir()
    (gold / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    for name, text in labels.items():
        (gold / "labels" / f"{name}.txt").write_text(text)
    for name in images:
        cv2.imwrite(str(imgs / f"{name}.png"), np.zeros((20, 40, 3), np.uint8))
    return gold, imgs


def test_load_gives_each_labelled_frame_its_image_size_and_pixel_boxes(tmp_path):
    gold, imgs = make_gold(tmp_path, {"a": "1 0.5 0.5 0.5 0.5\n0 0.25 0.25 0.5 0.5\n", "b": ""}, images=("a", "b"))
    frames = gold_set.load(gold, imgs)
    assert [f.name for f in frames] == ["a", "b"]
    a, b = frames
    assert (a.image, a.width, a.height) == (imgs / "a.png", 40, 20)
    assert a.boxes == (Box(1, 1.0, 10.0, 5.0, 30.0, 15.0), Box(0, 1.0, 0.0, 0.0, 20.0, 10.0))
    assert b.boxes == ()


def test_an_image_without_labels_is_not_a_gold_frame(tmp_path):
    gold, imgs = make_gold(tmp_path, {"a": ""}, images=("a", "unlabelled"))
    assert [f.name for f in gold_set.load(gold, imgs)] == ["a"]


def test_a_class_not_in_classes_txt_is_one_line_naming_the_label_file(tmp_path):
    gold, imgs = make_gold(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n2 0.5 0.5 0.1 0.1\n"}, images=("a",))
    with pytest.raises(gold_set.GoldError) as e:
        gold_set.load(gold, imgs)
    message = str(e.value)
    assert "\n" not in message
    assert str(gold / "labels" / "a.txt") in message
    assert "class 2" in message and "2 classes" in message


def test_a_gold_frame_with_no_image_is_one_line_naming_the_label_file_and_the_image(tmp_path):
    gold, imgs = make_gold(tmp_path, {"a": "", "b": ""}, images=("a",))
    with pytest.raises(gold_set.GoldError) as e:
        gold_set.load(gold, imgs)
    message = str(e.value)
    assert "\n" not in message
    assert str(gold / "labels" / "b.txt") in message and str(imgs / "b.png") in message


def test_a_malformed_gold_label_is_one_line_naming_the_file(tmp_path):
    gold, imgs = make_gold(tmp_path, {"a": "0 0.5 0.5 0.1\n"}, images=("a",))
    with pytest.raises(gold_set.GoldError) as e:
        gold_set.load(gold, imgs)
    assert "\n" not in str(e.value) and str(gold / "labels" / "a.txt") in str(e.value)


def test_a_mosaic_photo_larger_than_the_frame_is_one_line_naming_its_file():
    images = {"/photos/small.png": np.zeros((50, 60, 3), np.uint8), "/photos/huge.png": np.zeros((90, 70, 3), np.uint8)}
    with pytest.raises(native_large.MosaicError) as e:
        native_large.mosaic_frames(images, 2, width=200, height=80)
    message = str(e.value)
    assert "\n" not in message
    assert "/photos/huge.png" in message and "70x90" in message and "200x80" in message


def test_the_mosaic_keeps_each_photo_whole_at_its_own_size_and_pans_it():
    a = np.full((30, 40, 3), 100, np.uint8)
    b = np.full((20, 50, 3), 200, np.uint8)
    frames, offsets = native_large.mosaic_frames({"a": a, "b": b}, 2, width=200, height=100)
    assert [f.shape for f in frames] == [(100, 200, 3)] * 2
    for frame, where in zip(frames, offsets):
        for name, image in (("a", a), ("b", b)):
            x, y = where[name]
            assert np.array_equal(frame[y : y + image.shape[0], x : x + image.shape[1]], image)
    dx, dy = native_large.PAN
    assert offsets[1]["a"] == (offsets[0]["a"][0] + dx, offsets[0]["a"][1] + dy)
    assert int(frames[0].astype(int).sum()) == 100 * a.size + 200 * b.size  # nothing else drawn


def test_coco_ap_is_one_for_the_gold_boxes_themselves_and_zero_for_none():
    gold = [[Box(0, 1.0, 10, 10, 50, 90), Box(2, 1.0, 100, 20, 160, 60)], [Box(0, 1.0, 5, 5, 30, 70)]]
    found = [[Box(b.cls, 0.9, b.x1, b.y1, b.x2, b.y2) for b in frame] for frame in gold]
    assert bench_gold.coco_ap(gold, found, ["person", "bicycle", "car"]) == (1.0, 1.0)
    assert bench_gold.coco_ap(gold, [[], []], ["person", "bicycle", "car"]) == (0.0, 0.0)


def test_coco_ap50_counts_a_box_half_off_as_a_miss():
    gold = [[Box(0, 1.0, 0, 0, 100, 100)]]
    shifted = [[Box(0, 0.9, 50, 0, 150, 100)]]  # IoU 1/3
    assert bench_gold.coco_ap(gold, shifted, ["person"])[0] == 0.0
