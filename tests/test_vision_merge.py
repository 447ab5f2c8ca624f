"""Tile boxes in frame pixels, and the overlaps and box records the merge works with."""

import json

import numpy as np

from vision.boxes import Box, overlap_with
from vision.merge import to_frame
from vision.tiling import Tile


def test_to_frame_moves_boxes_by_the_tile_offset():
    assert to_frame([Box(0, 0.9, 10.0, 20.0, 50.0, 120.0)], Tile(176, 160, 416, 416)) == [
        Box(0, 0.9, 186.0, 180.0, 226.0, 280.0)
    ]


def test_to_frame_clips_to_the_tile():
    assert to_frame([Box(2, 0.5, -5.0, 400.0, 30.0, 430.0)], Tile(352, 160, 416, 416)) == [
        Box(2, 0.5, 352.0, 560.0, 382.0, 576.0)
    ]


def test_overlap_metrics():
    whole = np.array([380.0, 100, 420, 200])
    others = np.array([[380.0, 100, 400, 200], [500, 100, 520, 200]])
    assert overlap_with(whole, others, "iou").tolist() == [0.5, 0.0]
    assert overlap_with(whole, others, "ios").tolist() == [1.0, 0.0]


def test_box_json_round_trip_is_exact():
    b = Box(0, 0.7442241907119751, 380.3904829621315, 208.9650855064392, 399.7087487578392, 247.76192331314087)
    assert b.to_json() == [
        0,
        0.7442241907119751,
        380.3904829621315,
        208.9650855064392,
        399.7087487578392,
        247.76192331314087,
    ]
    assert Box.from_json(json.loads(json.dumps(b.to_json()))) == b
