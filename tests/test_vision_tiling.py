"""Tiling: the grid covers the frame exactly, neighbours overlap enough, edges are aligned."""

import numpy as np
import pytest

from vision.errors import VisionError
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile, axis_starts, stride_align, tile_grid

CASES = [  # width, height, tile_w, tile_h, overlap
    (768, 576, 416, None, 0.2),
    (1920, 1080, 640, None, 0.25),
    (4000, 3000, 608, 512, 0.1),
    (1000, 700, 300, None, 0.0),
    (333, 517, 100, 77, 0.5),
]


@pytest.mark.parametrize("width,height,tile_w,tile_h,overlap", CASES)
def test_tiles_cover_every_pixel(width, height, tile_w, tile_h, overlap):
    covered = np.zeros((height, width), dtype=bool)
    for t in tile_grid(width, height, tile_w, tile_h, overlap):
        covered[t.y : t.y + t.h, t.x : t.x + t.w] = True
    assert covered.all()


@pytest.mark.parametrize("width,height,tile_w,tile_h,overlap", CASES)
def test_tiles_stay_inside_the_frame_and_have_the_requested_size(width, height, tile_w, tile_h, overlap):
    th = tile_w if tile_h is None else tile_h
    for t in tile_grid(width, height, tile_w, tile_h, overlap):
        assert (t.w, t.h) == (tile_w, th)
        assert t.x >= 0 and t.y >= 0 and t.x + t.w <= width and t.y + t.h <= height


@pytest.mark.parametrize("width,height,tile_w,tile_h,overlap", CASES)
def test_neighbours_overlap_by_at_least_the_ratio(width, height, tile_w, tile_h, overlap):
    tiles = tile_grid(width, height, tile_w, tile_h, overlap)
    xs = sorted({t.x for t in tiles})
    ys = sorted({t.y for t in tiles})
    th = tile_w if tile_h is None else tile_h
    for a, b in zip(xs, xs[1:]):
        assert tile_w - (b - a) >= overlap * tile_w
    for a, b in zip(ys, ys[1:]):
        assert th - (b - a) >= overlap * th


@pytest.mark.parametrize("width,height,tile_w,tile_h,overlap", CASES)
def test_edge_tiles_are_aligned_to_the_border(width, height, tile_w, tile_h, overlap):
    tiles = tile_grid(width, height, tile_w, tile_h, overlap)
    assert min(t.x for t in tiles) == 0 and min(t.y for t in tiles) == 0
    assert max(t.x + t.w for t in tiles) == width and max(t.y + t.h for t in tiles) == height


def test_grid_of_the_sample_video_is_three_by_two():
    assert tile_grid(768, 576, 416, overlap=0.2) == [
        Tile(0, 0, 416, 416),
        Tile(176, 0, 416, 416),
        Tile(352, 0, 416, 416),
        Tile(0, 160, 416, 416),
        Tile(176, 160, 416, 416),
        Tile(352, 160, 416, 416),
    ]


def test_order_is_row_by_row_left_to_right_and_repeatable():
    tiles = tile_grid(1920, 1080, 640, overlap=0.25)
    assert tiles == sorted(tiles, key=lambda t: (t.y, t.x))
    assert tiles == tile_grid(1920, 1080, 640, overlap=0.25)


def test_no_more_tiles_than_the_overlap_needs():
    # 1000 px, 300 px tiles, no overlap: ceil(700 / 300) + 1 = 4 columns, not 5.
    assert sorted({t.x for t in tile_grid(1000, 300, 300, overlap=0.0)}) == [0, 233, 466, 700]


def test_frame_smaller_than_the_tile_is_one_whole_frame_tile():
    assert tile_grid(320, 240, 416) == [Tile(0, 0, 320, 240)]


def test_frame_narrower_than_the_tile_gets_full_width_tiles():
    tiles = tile_grid(300, 1000, 416, overlap=0.2)
    assert {(t.x, t.w) for t in tiles} == {(0, 300)}
    assert [(t.y, t.h) for t in tiles] == [(0, 416), (292, 416), (584, 416)]


def test_full_frame_adds_one_whole_frame_tile_last():
    tiles = tile_grid(768, 576, 416, overlap=0.2, full_frame=True)
    assert len(tiles) == 7 and tiles[-1] == Tile(0, 0, 768, 576)


def test_full_frame_is_not_duplicated_when_the_grid_is_the_frame():
    assert tile_grid(320, 240, 416, full_frame=True) == [Tile(0, 0, 320, 240)]


def test_tile_json_round_trip():
    t = Tile(176, 160, 416, 416)
    assert t.to_json() == [176, 160, 416, 416]
    assert Tile.from_json(t.to_json()) == t


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(tile_w=0), "tile width"),
        (dict(tile_w=-416), "tile width"),
        (dict(tile_w=416, tile_h=0), "tile height"),
        (dict(tile_w=416.5), "tile width"),
        (dict(tile_w=416, overlap=1.0), "overlap"),
        (dict(tile_w=416, overlap=-0.1), "overlap"),
    ],
)
def test_bad_arguments_raise_vision_error(kwargs, word):
    with pytest.raises(VisionError, match=word):
        tile_grid(768, 576, **kwargs)


def test_bad_frame_size_raises_vision_error():
    with pytest.raises(VisionError, match="frame width"):
        tile_grid(0, 576, 416)


@pytest.mark.parametrize(
    "length,size,overlap,align",
    [
        (1728, 416, 0.2, 32),
        (1080, 416, 0.2, 32),
        (2304, 416, 0.2, 32),
        (3000, 832, 0.25, 64),
        (1000, 300, 0.0, 7),
        (576, 416, 0.2, 32),
    ],
)
def test_starts_on_the_lattice_keep_the_overlap_and_end_at_the_border(length, size, overlap, align):
    starts = axis_starts(length, size, overlap, align)
    assert starts[0] == 0 and starts[-1] == length - size
    assert all(s % align == 0 for s in starts[:-1])
    assert all(size - (b - a) >= overlap * size for a, b in zip(starts, starts[1:]))
    # as few as the lattice allows: one start fewer could not reach the border, its steps on the
    # lattice (but the last)
    step = int(size * (1 - overlap)) // align * align
    assert len(starts) == 2 or (len(starts) - 3) * step + int(size * (1 - overlap)) < length - size


def test_the_lattice_is_the_nets_coarsest_stride_in_frame_pixels():
    assert stride_align(416, 416) == 32  # tile at 1:1
    assert stride_align(832, 416) == 64  # tile the net halves
    assert stride_align(640, 416) == 1  # 49.2 px: no whole-pixel lattice, tiles spread as before


def test_annotate_tiles_sit_on_the_stride_lattice():
    from vision.pipeline import frame_tiles

    settings = AnnotateSettings(model=ModelSpec(cfg="m.cfg", weights="m.weights", names="m.names"))
    tiles = frame_tiles(2304, 1728, settings)
    grid = [t for t in tiles if t != Tile(0, 0, 2304, 1728)]
    assert {t.x % 32 for t in grid} == {0} and {t.y % 32 for t in grid} == {0}  # 2304-416, 1728-416 are too
    assert tiles[-1] == Tile(0, 0, 2304, 1728)
    assert sorted({t.x for t in frame_tiles(768, 576, settings)}) == [0, 160, 352]  # was 0, 176, 352
