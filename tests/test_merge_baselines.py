"""The pooled merge kept to compare against (benchmarks/merge_baselines.py): every tile's boxes in one
NMS or greedy union, blind to which tile saw what. An object seen by two tiles becomes one box."""

import random
import sys
from pathlib import Path

import pytest

from vision.boxes import Box
from vision.errors import VisionError
from vision.merge import to_frame
from vision.tiling import Tile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from merge_baselines import merge_boxes  # noqa: E402  (benchmarks/ is scripts, not a package)

# Two tiles of a 768-wide frame overlapping in x = 352..416.
LEFT, RIGHT = Tile(0, 0, 416, 416), Tile(352, 0, 416, 416)


def split_person():
    """A person at x 380..420 crosses the left tile's right border (x=416): the left tile sees
    only the part up to 416, the right tile sees the whole person."""
    in_left = to_frame([Box(0, 0.6, 380.0, 100.0, 430.0, 200.0)], LEFT)  # clipped at 416
    in_right = to_frame([Box(0, 0.9, 28.0, 100.0, 68.0, 200.0)], RIGHT)  # 380..420
    return in_left + in_right


def test_split_object_with_nms_and_ios_is_one_box():
    assert merge_boxes(split_person(), "nms", "ios", 0.5) == [Box(0, 0.9, 380.0, 100.0, 420.0, 200.0)]


def test_split_object_with_greedy_and_ios_is_one_union_box():
    # The union spans both parts; the confidence is the best of them.
    assert merge_boxes(split_person(), "greedy", "ios", 0.5) == [Box(0, 0.9, 380.0, 100.0, 420.0, 200.0)]


def test_split_object_with_iou_keeps_both_parts_when_the_part_is_small():
    # A part 380..400 of a whole 380..420: IoU exactly 0.5 (not > 0.5), IoS 1.
    boxes = [Box(0, 0.6, 380.0, 100.0, 400.0, 200.0), Box(0, 0.9, 380.0, 100.0, 420.0, 200.0)]
    assert len(merge_boxes(boxes, "nms", "iou", 0.5)) == 2
    assert len(merge_boxes(boxes, "nms", "ios", 0.5)) == 1


def test_object_cut_in_two_halves_is_joined_by_greedy_merging():
    # Neither tile sees it whole: left part 300..416, right part 352..500; they share 352..416.
    halves = [Box(2, 0.7, 300.0, 50.0, 416.0, 150.0), Box(2, 0.8, 352.0, 50.0, 500.0, 150.0)]
    assert merge_boxes(halves, "greedy", "ios", 0.5) == [Box(2, 0.8, 300.0, 50.0, 500.0, 150.0)]
    assert merge_boxes(halves, "nms", "ios", 0.5) == [Box(2, 0.8, 352.0, 50.0, 500.0, 150.0)]


def test_different_classes_are_not_merged_unless_class_agnostic():
    boxes = [Box(0, 0.9, 10.0, 10.0, 50.0, 90.0), Box(1, 0.8, 11.0, 10.0, 50.0, 90.0)]
    assert len(merge_boxes(boxes, "nms", "iou", 0.5)) == 2
    assert merge_boxes(boxes, "nms", "iou", 0.5, class_agnostic=True) == [boxes[0]]


def test_separate_objects_are_kept():
    boxes = [Box(0, 0.9, 10.0, 10.0, 50.0, 90.0), Box(0, 0.8, 100.0, 10.0, 140.0, 90.0)]
    assert merge_boxes(boxes, "greedy", "ios", 0.5) == boxes


def test_result_is_sorted_by_confidence_then_class_and_corners():
    boxes = [
        Box(1, 0.5, 0.0, 0.0, 1.0, 1.0),
        Box(0, 0.5, 5.0, 0.0, 6.0, 1.0),
        Box(0, 0.9, 9.0, 0.0, 10.0, 1.0),
        Box(0, 0.5, 2.0, 0.0, 3.0, 1.0),
    ]
    assert merge_boxes(boxes) == [boxes[2], boxes[3], boxes[1], boxes[0]]


@pytest.mark.parametrize("method", ["nms", "greedy"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_result_does_not_depend_on_input_order(method, metric):
    rng = random.Random(4)
    boxes = []
    for _ in range(60):
        x, y = rng.uniform(0, 700), rng.uniform(0, 500)
        boxes.append(
            Box(rng.randrange(3), round(rng.random(), 3), x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80))
        )
    expected = merge_boxes(boxes, method, metric, 0.4)
    for _ in range(5):
        rng.shuffle(boxes)
        assert merge_boxes(boxes, method, metric, 0.4) == expected


def test_no_boxes_merge_to_no_boxes():
    assert merge_boxes([], "greedy", "ios") == []


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(method="wbf"), "merge method"),
        (dict(metric="giou"), "merge metric"),
        (dict(threshold=1.5), "threshold"),
    ],
)
def test_bad_merge_arguments_raise_vision_error(kwargs, word):
    with pytest.raises(VisionError, match=word):
        merge_boxes([], **kwargs)
