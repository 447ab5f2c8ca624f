"""The merge over tiles of two sizes: a box is kept at the level where it is whole (vision/merge.py,
rules 3, 5 and 6), and annotate cuts the coarse level's tiles (vision/pipeline.py, frame_tiles)."""

import dataclasses

from vision.boxes import Box
from vision.merge import merge_tiles
from vision.pipeline import frame_tiles
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile

# A 1200x832 frame: two fine tiles of 416 and one coarse tile of 832 (its right edge, x = 832, is inner).
FINE, FINE_RIGHT, COARSE = Tile(0, 0, 416, 416), Tile(480, 0, 416, 416), Tile(0, 0, 832, 832)
W, H = 1200, 832
PERSON = 0


def test_a_fine_piece_inside_a_coarse_whole_box_is_taken_in():
    person = Box(PERSON, 0.8, 100, 50, 300, 700)  # too tall for a fine tile: whole only in the coarse one
    head = Box(PERSON, 0.7, 150, 60, 250, 200)  # the fine tile saw a head and took it for a person
    assert merge_tiles([(FINE, [head]), (COARSE, [person])], W, H) == [(person, [0, 1])]


def test_a_neighbour_the_coarse_tile_found_apart_stays():
    person = Box(PERSON, 0.8, 100, 50, 300, 700)
    child = Box(PERSON, 0.7, 150, 60, 250, 200)  # the fine tile's box
    child_coarse = Box(PERSON, 0.6, 152, 62, 252, 198)  # the coarse tile found it too, apart from the person
    result = merge_tiles([(FINE, [child]), (COARSE, [person, child_coarse])], W, H)
    assert result == [(person, [1]), (child, [0, 1])]


def test_a_coarse_box_a_fine_tile_holds_whole_but_did_not_find_is_dropped():
    # Two coarse tiles found it (rule 5 alone would keep it); the fine tile, which holds it whole
    # and saw those pixels at twice the resolution, found nothing there.
    ghost = Box(PERSON, 0.6, 100, 100, 200, 300)
    detections = [(FINE, []), (COARSE, [ghost]), (Tile(64, 0, 832, 832), [ghost])]
    assert merge_tiles(detections, W, H) == []


def test_the_coarse_whole_box_is_settled_before_a_fine_part_of_it():
    # The person ends 12 px from the coarse tile's inner edge; the fine tile's torso lies 16 px inside
    # its own: by context alone the torso would go first and the person, overlapping it by IoU 0.39,
    # would be dropped as its duplicate.
    person = Box(PERSON, 0.6, 560, 50, 820, 700)
    torso = Box(PERSON, 0.9, 580, 100, 800, 400)
    assert merge_tiles([(FINE_RIGHT, [torso]), (COARSE, [person])], W, H) == [(person, [0, 1])]


def test_only_tiles_of_the_finest_level_that_holds_a_box_must_find_it_twice():
    walker = Box(PERSON, 0.7, 100, 100, 150, 220)  # inside the fine tile and the coarse tile
    assert merge_tiles([(FINE, [walker]), (COARSE, [])], W, H) == [(walker, [0])]


SETTINGS = AnnotateSettings(model=ModelSpec(cfg="m.cfg", weights="m.weights", names="m.names"))


def test_a_768x576_frame_keeps_seven_forwards_its_coarse_level_is_the_full_frame():
    tiles = frame_tiles(768, 576, SETTINGS)
    assert len(tiles) == 7 and tiles[-1] == Tile(0, 0, 768, 576)
    assert {(t.w, t.h) for t in tiles[:-1]} == {(416, 416)}


def test_coarse_tiles_twice_the_side_on_their_own_lattice_come_before_the_full_frame():
    tiles = frame_tiles(2304, 1728, SETTINGS)
    coarse = [t for t in tiles if (t.w, t.h) == (832, 832)]
    assert len(coarse) == 12 and tiles[-1] == Tile(0, 0, 2304, 1728)
    assert all(t.x % 64 == 0 or t.x + t.w == 2304 for t in coarse)
    assert all(t.y % 64 == 0 or t.y + t.h == 1728 for t in coarse)
    assert tiles.index(coarse[0]) == 42  # after the 42 fine tiles


def test_no_coarse_views_means_no_coarse_tiles_either():
    tiles = frame_tiles(2304, 1728, dataclasses.replace(SETTINGS, full_frame=False))
    assert len(tiles) == 42 and {(t.w, t.h) for t in tiles} == {(416, 416)}
