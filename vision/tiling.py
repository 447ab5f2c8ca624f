"""Cut a frame into overlapping tiles (subframes) so small objects stay large enough for the net.

The grid covers the frame exactly: the first tile starts at 0, the last ends at the border, and
the tiles in between are spread evenly, so no tile hangs over the edge or is padded. Neighbours
overlap by at least the requested ratio of the tile size, so an object no larger than the overlap
lies whole in at least one tile.

**Tiles sit on the net's stride lattice** (`align`, see `stride_align`): every start but the last is
a multiple of the frame pixels one cell of the net's coarsest output grid covers (32 net pixels:
every YOLO's input is a multiple of 32 for that reason). Then every tile computes, for the pixels it
shares with its neighbours and with one full-resolution pass over the frame, the same features at
the same phase, and finds the same boxes there. The detector is that sensitive to phase: on vtest.avi,
a single 1:1 pass shifted by 4 to 24 px agrees with the unshifted one at only recall 0.84-0.92 and
precision 0.80-0.87 (conf 0.3), and back at 0.99/0.97 when shifted by 32. Tiles off the lattice
each see the frame at another phase, so their union holds more boxes than any one pass. The
lattice is kept because one full-resolution pass is what tiling stands in for (what it gained and
cost on the benchmark clips: docs/design.md, "Measured history of vision/"). Keeping the overlap
guarantee on the lattice costs a tile row or column on some frame sizes (1920x1080: 24 tiles of
416 against 18).
"""

import math
import numbers
from typing import NamedTuple

from .errors import VisionError


class Tile(NamedTuple):
    """A rectangle of a frame in pixels: top-left (x, y), width w, height h."""

    x: int
    y: int
    w: int
    h: int

    def to_json(self) -> list:
        return [int(self.x), int(self.y), int(self.w), int(self.h)]

    @classmethod
    def from_json(cls, data) -> "Tile":
        x, y, w, h = data
        return cls(int(x), int(y), int(w), int(h))


def axis_starts(length: int, size: int, overlap: float, align: int = 1) -> list:
    """Start offsets of tiles of `size` pixels along an axis of `length` pixels.

    Consecutive starts differ by at most floor(size * (1 - overlap)) pixels (at least 1), so
    neighbours overlap by at least `overlap` * size; the last start is length - size. Every other
    start is a multiple of `align`; as few starts as that allows, spread evenly. A tile larger than
    the axis shrinks to the axis: one start, 0.
    """
    size = min(size, length)
    if size == length:
        return [0]
    max_step = max(1, math.floor(size * (1.0 - overlap)))
    align = max(1, min(int(align), max_step))
    span = length - size
    count = math.ceil(span / max_step) + 1
    while True:
        starts = [(i * span) // (count - 1) // align * align for i in range(count - 1)] + [span]
        if all(b - a <= max_step for a, b in zip(starts, starts[1:])):
            return starts
        count += 1


STRIDE = 32  # net pixels per cell of a YOLO net's coarsest output grid; its input is a multiple of it


def stride_align(tile: int, input_size: int) -> int:
    """Frame pixels per cell of the net's coarsest grid when a `tile`-pixel tile goes into an
    `input_size` net input: the lattice tiles start on. 1 (no lattice) when that is not a whole
    number of pixels (a tile the net scales by an odd ratio)."""
    pixels = STRIDE * tile / input_size
    return int(pixels) if pixels == int(pixels) else 1


MAX_TILE = 16384  # pixels; larger is a typo, not a frame (8K video is 7680 wide)


def tile_grid(
    width: int,
    height: int,
    tile_w: int,
    tile_h: int = None,
    overlap: float = 0.2,
    full_frame: bool = False,
    align: tuple = (1, 1),
) -> list:
    """Tiles covering a `width` x `height` frame, row by row, left to right.

    tile_w, tile_h: tile size in pixels (tile_h defaults to tile_w); a tile is never larger than
    the frame. overlap: minimum overlap of neighbours as a fraction of the tile size, in [0, 1).
    full_frame: append one tile that is the whole frame (unless the grid is already that one
    tile), so objects larger than a tile are also seen uncut. align: (x, y) lattice the starts
    sit on (axis_starts; AnnotateSettings.tile_align gives the net's).
    """
    tile_h = tile_w if tile_h is None else tile_h
    for name, value in (
        ("frame width", width),
        ("frame height", height),
        ("tile width", tile_w),
        ("tile height", tile_h),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise VisionError(f"{name} must be a positive integer of pixels, got {value!r}")
    if max(tile_w, tile_h) > MAX_TILE:
        raise VisionError(
            f"tile of {max(tile_w, tile_h)} px is larger than any video frame (max {MAX_TILE}); "
            "a tile larger than the frame is cut to the frame, so give at most the frame size"
        )
    if not isinstance(overlap, (int, float)) or not 0.0 <= overlap < 1.0:
        raise VisionError(f"tile overlap must be a ratio in [0, 1), got {overlap!r}")
    width, height, tile_w, tile_h = int(width), int(height), int(tile_w), int(tile_h)
    w, h = min(tile_w, width), min(tile_h, height)
    xs, ys = axis_starts(width, w, overlap, align[0]), axis_starts(height, h, overlap, align[1])
    tiles = [Tile(x, y, w, h) for y in ys for x in xs]
    whole = Tile(0, 0, width, height)
    if full_frame and tiles != [whole]:
        tiles.append(whole)
    return tiles
