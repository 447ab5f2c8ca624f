"""Join the boxes of all tiles of a frame (and of the full-frame pass) into one set of frame boxes.

Every detection carries where it came from: its tile, or the full-frame pass (a "tile" that is the
whole frame). That is the fact a plain NMS over the pooled boxes lacks, and it decides the rule
(`merge_tiles`):

1. **Boxes of one tile never suppress each other.** That tile's own NMS already separated them: two
   overlapping boxes of one tile are two objects (a person standing in front of another).
2. **A box is "cut" when it touches an inner edge of its tile** (an edge that is not the frame's),
   within 1 % of the tile side (YOLO's box for an object the crop cuts ends at the crop border):
   the tile saw only part of its object. A box that touches no inner edge is "whole" in its tile.
3. **Whole boxes go first, then coarse boxes, then cut boxes** (`Rank`). A box is whole at the
   level where it is seen uncut: a whole box of a tile that a smaller tile (annotate's coarse
   level has tiles twice the side of the fine ones) also holds whole is coarse, as are the
   full-frame pass's boxes. Whole boxes go larger tiles first (a fine tile's whole-looking box
   inside a large object is a part: a head, a torso), then in order of the context their tile
   gave them: the distance to the tile's nearest inner edge, largest first (the view closest to
   one pass over the whole frame; see vision/tiling.py for why the tiles share that pass's stride
   lattice); the rest by confidence. A whole box from another tile that overlaps a kept one by
   IoU > DUPLICATE_IOU (0.3) is the same object seen again with less around it: dropped. (Two
   objects the detector separates in one pass do overlap that much, up to its NMS IoU, 0.45: rule
   1 keeps those, as they come from one tile.) A full-frame box that matches a kept whole box
   (IoU > threshold) or lies inside a tile which found a whole box of about its size overlapping
   it (IoS > threshold, areas within a factor 1/threshold) is that box's blurrier twin, whatever
   their shapes and confidences: the tile saw the object in full, at full resolution. A coarse
   tile's box that a smaller tile holds whole is kept only as such a twin: the smaller tile saw
   those pixels at a finer scale and found nothing there.
4. **A cut box is settled only across sources.** A kept box from another tile or the full-frame
   pass that covers it (IoS, intersection over the smaller box, > threshold) and goes on past the
   edge that cuts it drops it ('nms') or absorbs it ('greedy': the union): a large object from the
   full-frame pass beats its cut pieces, while the box of another object that merely overlaps the
   piece (a person in front) does not. Pieces of one object no source saw whole are joined: two
   cut boxes of different tiles, cut at facing edges, each crossing the other tile's edge, and
   overlapping along the cut by IoU > threshold, become their union. A cut piece that is neither
   covered nor joined is dropped: part of an object no source saw whole.
5. **Two looks where there are two.** A box lying wholly inside two or more tiles of the smallest
   size that holds it must be found by at least two of them (a same-class box covering it by IoS >
   threshold): those tiles saw the same pixels at the same scale, and a box only one of them finds
   comes from that tile's context, not from the object (the "birds" of vtest.avi). A box only one
   such tile could see is kept as it is.
6. **A larger tile's whole box takes in the pieces it did not separate.** A box of a smaller tile
   (whole-looking or cut) lying in a kept whole box of a larger tile (IoS > threshold) goes into
   it, unless that larger tile also found, besides it, a box of the class where the smaller one is
   (IoU > DUPLICATE_IOU): then the larger tile saw two objects (a person in front of another), and
   rule 1's reasoning holds across the levels.

Why: on a crowded 2304x1728 grid of vtest.avi frames (`benchmarks/bench_accuracy.py`, tile 416,
conf 0.3) this rule reaches recall 0.970 / precision 0.892, where NMS over the pooled boxes reached
0.770 / 0.814; with the coarse level, rules 3 and 6 take the gold set's mosaic of sharp photos
whose people are larger than a tile (`benchmarks/bench_gold.py`) from AP50 26.7 to 45.8 and leave
the crowded grid as it was. The measurements behind each rule and constant are in docs/design.md
("Measured history of vision/").

The result does not depend on the order of the input.
"""

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .boxes import Box, overlap_with
from .errors import VisionError
from .tiling import Tile

MERGE_METHODS = ("nms", "greedy")
MERGE_METRICS = ("iou", "ios")
DUPLICATE_IOU = 0.3  # two whole boxes of one class from two tiles overlapping more are one object (docstring, rule 3)
RULE_VERSION = 4  # part of the merge fingerprint: a changed rule re-merges a re-run's labels (no YOLO)


def to_frame(boxes, tile: Tile) -> list:
    """Boxes detected in a tile image, moved to frame pixels and clipped to the tile."""
    out = []
    for b in boxes:
        x1 = min(max(b.x1 + tile.x, tile.x), tile.x + tile.w)
        y1 = min(max(b.y1 + tile.y, tile.y), tile.y + tile.h)
        x2 = min(max(b.x2 + tile.x, tile.x), tile.x + tile.w)
        y2 = min(max(b.y2 + tile.y, tile.y), tile.y + tile.h)
        out.append(Box(b.cls, b.conf, float(x1), float(y1), float(x2), float(y2)))
    return out


def check_merge_args(method: str, metric: str, threshold: float) -> None:
    """Raise VisionError for an unknown method or metric or a threshold outside [0, 1]."""
    if method not in MERGE_METHODS:
        raise VisionError(f"unknown merge method {method!r}; use one of {', '.join(MERGE_METHODS)}")
    if metric not in MERGE_METRICS:
        raise VisionError(f"unknown merge metric {metric!r}; use one of {', '.join(MERGE_METRICS)}")
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise VisionError(f"merge threshold must be in [0, 1], got {threshold!r}")


EDGE_MARGIN = 0.01  # a box within 1 % of the tile side (4 px at 416) from an inner edge is cut by it


def _edge_gaps(box: Box, tile: Tile, frame_w: int, frame_h: int) -> tuple:
    """For each edge of `tile` (left, top, right, bottom): (whether it is inner, not the frame's; how
    far the box lies inside it)."""
    return (
        (tile.x > 0, box.x1 - tile.x),
        (tile.y > 0, box.y1 - tile.y),
        (tile.x + tile.w < frame_w, tile.x + tile.w - box.x2),
        (tile.y + tile.h < frame_h, tile.y + tile.h - box.y2),
    )


def cut_sides(box: Box, tile: Tile, frame_w: int, frame_h: int) -> tuple:
    """Which inner edges of `tile` the box touches: (left, top, right, bottom) booleans."""
    mx, my = max(2.0, EDGE_MARGIN * tile.w), max(2.0, EDGE_MARGIN * tile.h)
    gaps = _edge_gaps(box, tile, frame_w, frame_h)
    return tuple(inner and gap <= margin for (inner, gap), margin in zip(gaps, (mx, my, mx, my)))


def _overlap(a: Box, b: Box, metric: str) -> float:
    return float(overlap_with(np.array([a.x1, a.y1, a.x2, a.y2]), np.array([[b.x1, b.y1, b.x2, b.y2]]), metric)[0])


def _interval_iou(a1: float, a2: float, b1: float, b2: float) -> float:
    inter = max(0.0, min(a2, b2) - max(a1, b1))
    union = max(a2, b2) - min(a1, b1)
    return inter / union if union > 0 else 0.0


def _pieces_of_one(a: Box, a_cut: tuple, a_tile: Tile, b: Box, b_cut: tuple, b_tile: Tile, threshold: float) -> bool:
    """Two cut boxes are parts of one object: cut at facing edges (a on its right, b on its left, or
    one above the other), each crossing the other tile's edge (so both span the strip where the
    tiles overlap, as the two sides of one object that goes through it do), and overlapping along
    the cut by IoU > threshold."""
    for first, first_cut, first_tile, second, second_cut, second_tile in (
        (a, a_cut, a_tile, b, b_cut, b_tile),
        (b, b_cut, b_tile, a, a_cut, a_tile),
    ):
        if first_cut[2] and second_cut[0] and first.x1 < second_tile.x and second.x2 > first_tile.x + first_tile.w:
            return _interval_iou(a.y1, a.y2, b.y1, b.y2) > threshold
        if first_cut[3] and second_cut[1] and first.y1 < second_tile.y and second.y2 > first_tile.y + first_tile.h:
            return _interval_iou(a.x1, a.x2, b.x1, b.x2) > threshold
    return False


def _blurry_twin(full: Box, whole: Box, tile: Tile, threshold: float) -> bool:
    """A full-frame box is the twin of a whole tile box when it lies inside that tile (which saw its
    object in full, at full resolution) and the two cover each other (IoS > threshold) at a size
    alike (the smaller area above `threshold` of the larger: not a part inside a whole)."""
    small, large = sorted((full.area, whole.area))
    return inside(full, tile) and _overlap(full, whole, "ios") > threshold and small > threshold * large


def inside(box: Box, tile: Tile) -> bool:
    """Whether the box lies wholly within the tile."""
    return box.x1 >= tile.x and box.y1 >= tile.y and box.x2 <= tile.x + tile.w and box.y2 <= tile.y + tile.h


def _continues_past(box: Box, cut: tuple, tile: Tile) -> bool:
    """Whether `box` goes on past an edge of `tile` that cuts the piece: only then is it the rest of
    that piece's object, and not another object the piece happens to overlap (a person in front)."""
    left, top, right, bottom = cut
    return (
        (left and box.x1 < tile.x)
        or (top and box.y1 < tile.y)
        or (right and box.x2 > tile.x + tile.w)
        or (bottom and box.y2 > tile.y + tile.h)
    )


def _margin(box: Box, tile: Tile, frame_w: int, frame_h: int) -> float:
    """How far the box lies from the nearest inner edge of its tile (the frame's edges do not count):
    the context the tile gave it. A tile with no inner edge (the whole frame) gives every box all."""
    gaps = [gap for inner, gap in _edge_gaps(box, tile, frame_w, frame_h) if inner]
    return min(gaps) if gaps else float("inf")


def _union(a: Box, b: Box) -> Box:
    return Box(a.cls, max(a.conf, b.conf), min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))


class Rank(IntEnum):
    """What a box's source saw of its object; boxes are settled in this order (rule 3)."""

    WHOLE = 0  # a tile box touching no inner edge of its tile, that no smaller tile holds whole
    COARSE = 1  # a full-frame box, or a whole box a smaller tile holds whole: seen coarser than it could be
    CUT = 2  # a tile box touching an inner edge of its tile: that tile saw only part of the object


@dataclass(frozen=True)
class _Detection:
    rank: Rank
    box: Box
    source: int  # index into the detections: the tile (or full-frame pass) that found it
    cut: tuple | None  # the inner edges it touches (left, top, right, bottom) when CUT, else None
    held: bool = False  # a whole box of a tile that a smaller tile holds whole (saw at a finer scale)


@dataclass
class _Kept:
    box: Box
    source: int  # the detection source (tile) it came from
    sources: set  # every source that saw it
    cut: tuple | None  # the inner edges it touches while it is a cut piece; None once whole
    rank: Rank = Rank.WHOLE


@dataclass(frozen=True)
class _Frame:
    """What every step of the merge reads: the frame, its sources' tiles and the merge settings."""

    w: int
    h: int
    tiles: list  # one Tile per detection source
    boxes: list  # each source's boxes
    method: str
    metric: str
    threshold: float
    class_agnostic: bool

    @property
    def whole(self) -> Tile:
        return Tile(0, 0, int(self.w), int(self.h))

    def same_class(self, a: Box, b: Box) -> bool:
        return self.class_agnostic or a.cls == b.cls


def merge_tiles(
    detections,
    frame_w: int,
    frame_h: int,
    method: str = "nms",
    metric: str = "ios",
    threshold: float = 0.5,
    class_agnostic: bool = False,
) -> list:
    """One box per object from per-tile detections; see the module docstring for the rule.

    detections: [(Tile, [Box, ...]), ...] in frame pixels, a Tile equal to the whole frame being the
    full-frame pass. `metric` and `threshold` decide when a kept box covers a cut one; whole boxes
    are duplicates above `threshold` IoU. Returns [(Box, [source index, ...]), ...]: each kept box with
    the indices (into `detections`) of every source that saw it, in canonical box order.
    """
    check_merge_args(method, metric, threshold)
    frame = _Frame(
        frame_w,
        frame_h,
        [Tile(*tile) for tile, _ in detections],
        [list(boxes) for _, boxes in detections],
        method,
        metric,
        threshold,
        class_agnostic,
    )
    kept: list[_Kept] = []
    for d in _in_settling_order(_ranked(detections, frame), frame):
        others = _from_other_sources(d, kept, frame)
        settle = _settle_cut if d.rank is Rank.CUT else _settle_whole
        new = settle(d, others, frame)
        if new is not None:
            kept.append(new)
    return _final(kept, detections, frame)


def _ranked(detections, frame: _Frame) -> list[_Detection]:
    """Rule 2: every box with its rank, from where it lies in its tile."""
    out = []
    for source, (_, boxes) in enumerate(detections):
        tile = frame.tiles[source]
        for box in boxes:
            cut = None if tile == frame.whole else cut_sides(box, tile, frame.w, frame.h)
            if cut is not None and any(cut):
                out.append(_Detection(Rank.CUT, box, source, cut))
                continue
            held = cut is not None and _held_finer(box, tile, frame)
            rank = Rank.WHOLE if cut is not None and not held else Rank.COARSE
            out.append(_Detection(rank, box, source, None, held))
    return out


def _held_finer(box: Box, tile: Tile, frame: _Frame) -> bool:
    """Whether a tile smaller than `tile` holds the box whole (inside it, touching none of its inner edges)."""
    return any(
        t.w * t.h < tile.w * tile.h and inside(box, t) and not any(cut_sides(box, t, frame.w, frame.h))
        for t in frame.tiles
    )


def _in_settling_order(ranked: list[_Detection], frame: _Frame) -> list[_Detection]:
    """Rule 3's order: by rank; whole boxes by the context their tile gave them, most first; then
    canonical box order (confidence first) and source, so the input's order never matters."""

    def context(d: _Detection) -> tuple:
        if d.rank is not Rank.WHOLE:
            return 0, 0.0
        tile = frame.tiles[d.source]
        return -tile.w * tile.h, -_margin(d.box, tile, frame.w, frame.h)

    return sorted(ranked, key=lambda d: (d.rank, context(d), d.box.sort_key(), d.source))


def _from_other_sources(d: _Detection, kept: list[_Kept], frame: _Frame) -> list[_Kept]:
    """Rule 1: only kept boxes of the same class from another source can settle a box."""
    return [k for k in kept if k.source != d.source and frame.same_class(d.box, k.box)]


def _settle_whole(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """Rules 3 and 6: a whole or coarse box that is a kept whole box seen again, or a piece of a larger
    tile's whole box, adds its source to that box; a coarse box a smaller tile holds whole is then
    dropped; otherwise it is a new object (returned)."""
    twin = _seen_again(d, others, frame) or _host(d, others, frame)
    if twin is not None:
        twin.sources.add(d.source)
        return None
    if d.held:
        return None
    return _Kept(d.box, d.source, {d.source}, None, d.rank)


def _host(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """Rule 6: the first kept whole box of a larger tile that `d` lies in (IoS > threshold) and that
    tile did not separate from `d` (found no other box of the class where `d` is): `d` is a piece
    of the object the larger tile saw whole (a head, a torso), not a neighbour."""
    area = frame.tiles[d.source].w * frame.tiles[d.source].h
    for k in others:
        tile = frame.tiles[k.source]
        if (
            k.rank is Rank.WHOLE
            and k.cut is None
            and tile.w * tile.h > area
            and _overlap(d.box, k.box, "ios") > frame.threshold
            and not _separated(d.box, k, frame)
        ):
            return k
    return None


def _separated(box: Box, k: _Kept, frame: _Frame) -> bool:
    """Whether the tile of kept box `k` found, besides `k`, a box of `box`'s class where `box` is."""
    return any(
        b != k.box and frame.same_class(box, b) and _overlap(box, b, "iou") > DUPLICATE_IOU
        for b in frame.boxes[k.source]
    )


def _seen_again(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """The first kept whole box that `d` duplicates: a whole box overlapping it by IoU > DUPLICATE_IOU;
    a full-frame box overlapping it by IoU > threshold, or its blurry twin."""
    limit = DUPLICATE_IOU if d.rank is Rank.WHOLE else frame.threshold
    for k in others:
        if k.cut is not None:
            continue
        if _overlap(d.box, k.box, "iou") > limit:
            return k
        if d.rank is Rank.COARSE and _blurry_twin(d.box, k.box, frame.tiles[k.source], frame.threshold):
            return k
    return None


def _settle_cut(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """Rules 4 and 6: a cut box goes into a kept whole box that covers it and goes on past its cut,
    or into a larger tile's whole box it lies in (dropped, or with 'greedy' joined into it); else
    joins a kept piece of the same object cut by another tile; else it is kept, for now, as a lone
    piece (returned)."""
    cover = _covering(d, others, frame) or _host(d, others, frame)
    if cover is not None:
        if frame.method == "greedy":
            cover.box = _union(cover.box, d.box)
        cover.sources.add(d.source)
        return None
    piece = _other_piece(d, others, frame)
    if piece is None:
        return _Kept(d.box, d.source, {d.source}, d.cut)
    piece.box = _union(piece.box, d.box)
    piece.sources.add(d.source)
    piece.cut = tuple(a or b for a, b in zip(piece.cut, d.cut))
    return None


def _covering(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """The first kept whole box that covers the cut box (`metric` > threshold) and goes on past the
    edge that cuts it: the rest of its object."""
    tile = frame.tiles[d.source]
    for k in others:
        if (
            k.cut is None
            and _overlap(d.box, k.box, frame.metric) > frame.threshold
            and _continues_past(k.box, d.cut, tile)
        ):
            return k
    return None


def _other_piece(d: _Detection, others: list[_Kept], frame: _Frame) -> _Kept | None:
    """The first kept cut piece, from sources that have not yet seen `d`'s, that is the other side of
    `d`'s object (`_pieces_of_one`)."""
    tile = frame.tiles[d.source]
    for k in others:
        if (
            k.cut is not None
            and d.source not in k.sources
            and _pieces_of_one(k.box, k.cut, frame.tiles[k.source], d.box, d.cut, tile, frame.threshold)
        ):
            return k
    return None


def _final(kept: list[_Kept], detections, frame: _Frame) -> list:
    """The kept boxes but lone cut pieces (rule 4) and boxes only one of their tiles found (rule 5),
    each with its sources, in canonical box order."""
    out = [(k.box, sorted(k.sources)) for k in kept if not _lone_piece(k) and _seen_twice(k.box, detections, frame)]
    return sorted(out, key=lambda e: e[0].sort_key())


def _lone_piece(k: _Kept) -> bool:
    """A cut piece no other source covered or joined: part of an object no source saw whole."""
    return k.cut is not None and len(k.sources) == 1


def _seen_twice(box: Box, detections, frame: _Frame) -> bool:
    """Rule 5. False for a box that lies wholly inside two or more tiles of the smallest size that
    holds it but was found by only one of them: every such tile saw those pixels at the same scale,
    so one look alone is the context-dependent kind of false positive (the "birds" of vtest.avi)."""
    holders = [
        (tile, boxes) for tile, (_, boxes) in zip(frame.tiles, detections) if tile != frame.whole and inside(box, tile)
    ]
    finest = min((tile.w * tile.h for tile, _ in holders), default=0)
    looks = seen = 0
    for tile, boxes in holders:
        if tile.w * tile.h != finest:
            continue
        looks += 1
        seen += any(frame.same_class(box, b) and _overlap(box, b, "ios") > frame.threshold for b in boxes)
    return looks < 2 or seen >= 2
