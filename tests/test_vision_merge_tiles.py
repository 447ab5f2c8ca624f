"""The tile-aware merge: a box's tile decides what it may suppress, and what may suppress it."""

import sys
from pathlib import Path

import pytest

from vision.boxes import Box
from vision.detections import frame_record, merged_boxes, raw_detections, read_detections, write_detections
from vision.errors import VisionError
from vision.merge import merge_tiles
from vision.tiling import Tile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from merge_baselines import merge_boxes  # noqa: E402  (benchmarks/ is scripts, not a package)

# A 768x416 frame in two tiles overlapping in x = 352..416, plus the full-frame pass.
LEFT, RIGHT, FULL = Tile(0, 0, 416, 416), Tile(352, 0, 416, 416), Tile(0, 0, 768, 416)
PERSON = 0


def boxes(result):
    return [b for b, _ in result]


def test_two_people_overlapping_inside_one_tile_are_both_kept():
    front, behind = Box(PERSON, 0.9, 100, 100, 140, 200), Box(PERSON, 0.8, 112, 105, 150, 205)
    result = merge_tiles([(LEFT, [front, behind]), (RIGHT, [])], 768, 416)
    assert boxes(result) == [front, behind]
    assert merge_boxes([front, behind], "nms", "ios", 0.5) == [front]  # the pooled NMS deleted one


def test_an_object_cut_by_a_tile_border_is_one_box_the_whole_one():
    cut = Box(PERSON, 0.95, 380, 100, 416, 200)  # the left tile sees it up to its right edge
    whole = Box(PERSON, 0.7, 380, 100, 430, 200)  # the right tile sees all of it
    result = merge_tiles([(LEFT, [cut]), (RIGHT, [whole])], 768, 416)
    assert result == [(whole, [0, 1])]


def test_an_object_seen_whole_by_two_overlapping_tiles_is_one_box():
    a, b = Box(PERSON, 0.9, 360, 50, 400, 150), Box(PERSON, 0.8, 361, 51, 401, 149)
    assert merge_tiles([(LEFT, [a]), (RIGHT, [b])], 768, 416) == [(a, [0, 1])]


def test_an_object_spanning_four_tiles_is_one_box_from_the_full_frame_pass():
    grid = [Tile(x, y, 416, 416) for y in (0, 352) for x in (0, 352)]
    pieces = [
        Box(PERSON, 0.9, 300, 300, 416, 416),
        Box(PERSON, 0.8, 352, 300, 480, 416),
        Box(PERSON, 0.7, 300, 352, 416, 480),
        Box(PERSON, 0.6, 352, 352, 480, 480),
    ]
    whole = Box(PERSON, 0.5, 300, 300, 480, 480)
    detections = [*zip(grid, [[p] for p in pieces]), (Tile(0, 0, 768, 768), [whole])]
    assert merge_tiles(detections, 768, 768) == [(whole, [0, 1, 2, 3, 4])]


def test_of_two_whole_views_of_one_object_the_tile_that_saw_more_around_it_gives_the_box():
    # Both tiles hold the object whole. The left tile's box ends 11 px from its inner edge, the right
    # tile's lies 28 px inside its own: the right one had the context, whatever the confidences, and
    # the left one's take (IoU 0.39 with it, above the cross-tile duplicate threshold) is the same object.
    near_edge = Box(PERSON, 0.95, 372, 60, 405, 150)
    central = Box(PERSON, 0.6, 380, 80, 410, 190)
    assert merge_tiles([(LEFT, [near_edge]), (RIGHT, [central])], 768, 416) == [(central, [0, 1])]


def test_boxes_of_two_tiles_that_overlap_less_than_the_duplicate_threshold_are_two_objects():
    a = Box(PERSON, 0.9, 360, 50, 400, 150)
    b = Box(PERSON, 0.8, 385, 50, 410, 150)  # IoU 0.3 exactly: not above it
    assert boxes(merge_tiles([(LEFT, [a]), (RIGHT, [b])], 768, 416)) == [a, b]


def test_cut_pieces_no_pass_saw_whole_are_joined_into_one_box():
    left = Box(PERSON, 0.9, 200, 100, 416, 300)  # a wide object, cut by both tiles' inner edges
    right = Box(PERSON, 0.8, 352, 104, 600, 296)
    result = merge_tiles([(LEFT, [left]), (RIGHT, [right])], 768, 416)
    assert result == [(Box(PERSON, 0.9, 200, 100, 600, 300), [0, 1])]


def test_a_lone_cut_piece_is_dropped():
    piece = Box(PERSON, 0.9, 390, 100, 416, 200)  # the right tile, which holds it whole, saw nothing
    assert merge_tiles([(LEFT, [piece]), (RIGHT, [])], 768, 416) == []


def test_a_small_object_from_a_tile_beats_its_full_frame_twin():
    tile_box = Box(PERSON, 0.6, 100, 100, 140, 200)
    blurry = Box(PERSON, 0.9, 98, 96, 143, 207)  # more confident, but seen at 1/1.85 scale
    assert merge_tiles([(LEFT, [tile_box]), (RIGHT, []), (FULL, [blurry])], 768, 416) == [(tile_box, [0, 2])]


def test_a_box_two_tiles_could_see_but_only_one_found_is_dropped():
    lone = Box(PERSON, 0.9, 360, 50, 400, 150)  # inside the overlap: both tiles saw these pixels
    assert merge_tiles([(LEFT, [lone]), (RIGHT, [])], 768, 416) == []
    outside = Box(PERSON, 0.9, 100, 50, 140, 150)  # only the left tile saw these pixels
    assert merge_tiles([(LEFT, [outside]), (RIGHT, [])], 768, 416) == [(outside, [0])]


def test_greedy_joins_a_cut_piece_into_the_box_that_covers_it():
    cut = Box(PERSON, 0.95, 380, 90, 416, 200)
    whole = Box(PERSON, 0.7, 380, 100, 430, 200)
    result = merge_tiles([(LEFT, [cut]), (RIGHT, [whole])], 768, 416, method="greedy")
    assert result == [(Box(PERSON, 0.95, 380, 90, 430, 200), [0, 1])]  # the union, with the highest confidence


def test_the_result_does_not_depend_on_the_order_of_boxes_within_a_tile():
    a, b, c = Box(PERSON, 0.9, 100, 100, 140, 200), Box(PERSON, 0.8, 112, 105, 150, 205), Box(2, 0.5, 10, 10, 50, 50)
    assert merge_tiles([(LEFT, [a, b, c]), (RIGHT, [])], 768, 416) == merge_tiles(
        [(LEFT, [c, b, a]), (RIGHT, [])], 768, 416
    )


def test_bad_merge_arguments_raise_vision_error():
    with pytest.raises(VisionError, match="unknown merge method"):
        merge_tiles([], 10, 10, method="average")


def test_detections_jsonl_round_trip(tmp_path):
    per_tile = [(LEFT, [Box(PERSON, 0.95, 380, 100, 416, 200)]), (RIGHT, [Box(PERSON, 0.7, 380, 100, 430, 200)])]
    merged = merge_tiles(per_tile, 768, 416)
    records = [frame_record("000001", per_tile, merged), frame_record("000002", [(LEFT, []), (RIGHT, [])], [])]
    write_detections(tmp_path / "detections.jsonl", records)
    back = read_detections(tmp_path / "detections.jsonl")
    assert list(back) == ["000001", "000002"]
    assert raw_detections(back["000001"]) == per_tile
    assert merged_boxes(back["000001"]) == [(merged[0][0], [LEFT, RIGHT])]
    assert back["000002"] == records[1]


def test_a_broken_detections_line_names_its_file_and_line(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text('{"frame": "000001", "boxes": [], "raw": []}\n{"frame": "000002", "boxes": [\n')
    with pytest.raises(VisionError, match=r"detections.jsonl:2: not a detections record"):
        read_detections(path)


def test_a_full_frame_box_of_an_object_a_tile_saw_whole_gives_way_even_at_another_shape():
    van = Box(7, 0.7, 669, 50, 700, 87)  # the tile's box
    blurry = Box(7, 0.8, 660, 56, 710, 81)  # the full-frame pass's: IoU 0.45, but the same van
    assert merge_tiles([(LEFT, []), (RIGHT, [van]), (FULL, [blurry])], 768, 416) == [(van, [1, 2])]


def test_a_full_frame_box_around_a_smaller_tile_box_is_another_object_and_stays():
    head = Box(PERSON, 0.7, 600, 50, 640, 100)  # a part the tile saw, a quarter of the person
    person = Box(PERSON, 0.6, 580, 40, 680, 240)
    result = merge_tiles([(LEFT, []), (RIGHT, [head]), (FULL, [person])], 768, 416)
    assert result == [(head, [1]), (person, [2])]
