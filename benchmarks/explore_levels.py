"""Whole objects across tiles (issue 24, item 2): which tiling levels and which merge keep a large object
whole when 416-px tiles cut it, without losing the crowd? An experiment, not a benchmark of the defaults.

Each clip frame (bench_accuracy's crowded, large and native-large clips; the gold set's vtest frames and
native-large mosaic) goes through the detector once per tile of every candidate level (tiles of
LEVELS x the clip's tile size, on the stride lattice at that size, overlap as annotate's; and the
full frame). The raw per-tile boxes are cached (~/.cache/cvfleet/explore_levels/), so each merge
variant is a pure function of them and re-runs in seconds. Every variant is scored as bench_accuracy
scores (one-to-one, IoU >= 0.5, conf 0.3, against the detector at 1:1) and as bench_gold does (COCO
AP50 at conf 0.25 against the human-checked boxes). Printed per variant: forwards per frame on each
clip, then the scores.

Variants (`Variant`): `levels` the tile sizes, as multiples of the clip's tile (1 = today's tiles;
the full-frame pass is always added, as annotate adds it), and the merge options of `merge_levels`.
"""

import argparse
import dataclasses
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_gold
import cv2
import gold_set
from bench_accuracy import CONF, NativeDetector, as_annotated, grid_clip, native_boxes, scale, vtest_frames
from native_large import native_large_clip

from vision.boxes import Box
from vision.content_scale import SAMPLE_FRAMES
from vision.detector import Detector
from vision.labels import read_classes
from vision.merge import (
    DUPLICATE_IOU,
    _blurry_twin,
    _continues_past,
    _margin,
    _overlap,
    _pieces_of_one,
    _union,
    cut_sides,
    inside,
    merge_tiles,
    to_frame,
)
from vision.pipeline import content_scale, frame_tiles
from vision.scoring import Score, score_frame
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile, stride_align, tile_grid
from workers import asset_cache

LEVELS = (1, 1.5, 2, 3, 4)  # tile sizes cached, as multiples of the clip's tile
CACHE = Path.home() / ".cache" / "cvfleet" / "explore_levels"


@dataclass(frozen=True)
class Clip:
    name: str
    frames: list  # images as annotate reads them (through a JPEG)
    truth: list  # boxes per frame: the 1:1 reference, or the gold boxes
    scale: float  # content scale
    gold: bool


def level_tiles(w: int, h: int, settings: AnnotateSettings, clip_scale: float, level: float) -> list:
    """The tiles of one level (no full frame): tiles `level` x the clip's tile size, on the stride
    lattice at that size, the settings' overlap."""
    tw, th = (round(s * level) for s in settings.tile_size(clip_scale))
    align = (stride_align(min(tw, w), settings.model.input_size), stride_align(min(th, h), settings.model.input_size))
    return [t for t in tile_grid(w, h, tw, th, settings.overlap, False, align) if t != Tile(0, 0, w, h)]


def all_tiles(clip: Clip, settings: AnnotateSettings) -> list:
    h, w = clip.frames[0].shape[:2]
    tiles = {Tile(0, 0, w, h)}
    for level in LEVELS:
        tiles.update(level_tiles(w, h, settings, clip.scale, level))
    return sorted(tiles)


def detections(clip: Clip, settings: AnnotateSettings, detector: Detector, key: str) -> list:
    """Per frame {Tile: [Box in frame pixels]} for every cached tile, at conf 0.25 (filter later)."""
    path = CACHE / f"{key}-{clip.name}-{len(clip.frames)}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    tiles = all_tiles(clip, settings)
    out = []
    for image in clip.frames:
        out.append({t: to_frame(detector.detect(image[t.y : t.y + t.h, t.x : t.x + t.w]), t) for t in tiles})
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


@dataclass(frozen=True)
class Variant:
    name: str
    levels: tuple = (1,)  # tile levels besides the full frame
    current: bool = False  # vision.merge.merge_tiles as it is (levels must be (1,))
    home: bool = False  # a whole box no finer tile could see whole ranks with the whole boxes
    absorb: str = "none"  # a home box of a coarser level takes in finer same-class boxes inside it: none, cut, all,
    # or unseen (all but those its own tile also found apart from it: that tile separated them)
    coarse_first: bool = False  # whole boxes of coarser tiles are settled before finer ones
    join: bool = True  # pieces of one object cut by two tiles are joined (rule 4)
    twin_drop: bool = False  # a coarse box a finer tile could see whole, and no finer box matches, is dropped
    twin_held: bool = False  # twin_drop only for boxes a finer tile holds whole (not every unmatched full-frame box)
    twin_tiles: bool = False  # twin_drop only for boxes of coarse tiles, never for full-frame boxes
    seen_level: bool = True  # rule 5 counts looks among the tiles of the finest level that holds the box
    full: bool = True  # the full-frame pass


WHOLE, TWIN, CUT = 0, 1, 2


@dataclass
class Kept:
    box: Box
    source: int
    sources: set
    cut: tuple | None
    level: int  # tile area of its source
    home: bool


def merge_levels(per_tile: list, w: int, h: int, v: Variant, threshold: float = 0.5) -> list:
    """vision.merge's rule over tiles of several sizes, with the options of `v` (see Variant)."""
    if v.current:
        return [b for b, _ in merge_tiles(per_tile, w, h, "nms", "ios", threshold)]
    frame = Tile(0, 0, w, h)
    tiles = [t for t, _ in per_tile]
    area = [t.w * t.h for t in tiles]

    def whole_in(box, t):
        return inside(box, t) and not any(cut_sides(box, t, w, h))

    ranked = []
    for s, (t, boxes) in enumerate(per_tile):
        for b in boxes:
            cut = None if t == frame else cut_sides(b, t, w, h)
            if cut is not None and any(cut):
                ranked.append((CUT, b, s, cut, False))
                continue
            finer_whole = any(area[u] < area[s] and whole_in(b, tiles[u]) for u in range(len(tiles)))
            if not finer_whole and (t != frame or v.home):
                ranked.append((WHOLE, b, s, None, False))
            else:
                ranked.append((TWIN, b, s, None, finer_whole))

    def order(r):
        rank, b, s, _, _ = r
        ctx = -_margin(b, tiles[s], w, h) if rank == WHOLE else 0.0
        level = -area[s] if rank == WHOLE and v.coarse_first else 0
        return (rank, level, ctx, b.sort_key(), s)

    def separated(b: Box, k: Kept) -> bool:
        """Whether the tile of kept box k found, apart from k, a box of b's class where b is."""
        return any(
            x != k.box and x.cls == b.cls and _overlap(b, x, "iou") > DUPLICATE_IOU for x in per_tile[k.source][1]
        )

    kept: list[Kept] = []
    for rank, b, s, cut, held in sorted(ranked, key=order):
        others = [k for k in kept if k.source != s and k.box.cls == b.cls]
        if v.absorb != "none" and (rank == CUT or v.absorb != "cut"):
            host = next(
                (
                    k
                    for k in others
                    if k.home
                    and k.level > area[s]
                    and _overlap(b, k.box, "ios") > threshold
                    and not (v.absorb == "unseen" and separated(b, k))
                ),
                None,
            )
            if host is not None:
                host.sources.add(s)
                continue
        if rank == CUT:
            cover = next(
                (
                    k
                    for k in others
                    if k.cut is None and _overlap(b, k.box, "ios") > threshold and _continues_past(k.box, cut, tiles[s])
                ),
                None,
            )
            if cover is not None:
                cover.sources.add(s)
                continue
            piece = None
            if v.join:
                piece = next(
                    (
                        k
                        for k in others
                        if k.cut is not None
                        and s not in k.sources
                        and _pieces_of_one(k.box, k.cut, tiles[k.source], b, cut, tiles[s], threshold)
                    ),
                    None,
                )
            if piece is None:
                kept.append(Kept(b, s, {s}, cut, area[s], False))
            else:
                piece.box = _union(piece.box, b)
                piece.sources.add(s)
                piece.cut = tuple(x or y for x, y in zip(piece.cut, cut))
            continue
        limit = DUPLICATE_IOU if rank == WHOLE else threshold
        twin = None
        for k in others:
            if k.cut is not None:
                continue
            if _overlap(b, k.box, "iou") > limit or (
                rank == TWIN and _blurry_twin(b, k.box, tiles[k.source], threshold)
            ):
                twin = k
                break
        if twin is not None:
            twin.sources.add(s)
            continue
        if rank == TWIN and v.twin_drop and (held or not v.twin_held) and not (v.twin_tiles and tiles[s] == frame):
            continue
        finer_exists = any(a < area[s] for a in area)
        kept.append(Kept(b, s, {s}, None, area[s], rank == WHOLE and finer_exists))

    def seen_twice(k: Kept) -> bool:
        holders = [u for u, t in enumerate(tiles) if t != frame and inside(k.box, t)]
        finest = min((area[u] for u in holders), default=0)
        looks = seen = 0
        for u in holders:
            t, boxes = per_tile[u]
            if v.seen_level and area[u] != finest:
                continue
            looks += 1
            seen += any(k.box.cls == x.cls and _overlap(k.box, x, "ios") > threshold for x in boxes)
        return looks < 2 or seen >= 2

    out = [k.box for k in kept if not (k.cut is not None and len(k.sources) == 1) and seen_twice(k)]
    return sorted(out, key=lambda b: b.sort_key())


def variant_tiles(clip: Clip, v: Variant, settings: AnnotateSettings) -> list:
    h, w = clip.frames[0].shape[:2]
    if v.current:
        return frame_tiles(w, h, settings, clip.scale)
    tiles = []
    for level in v.levels:
        tiles += [t for t in level_tiles(w, h, settings, clip.scale, level) if t not in tiles]
    if v.full and Tile(0, 0, w, h) not in tiles:
        tiles.append(Tile(0, 0, w, h))
    return tiles


def run_variant(clip: Clip, found: list, v: Variant, settings: AnnotateSettings) -> tuple[int, list]:
    h, w = clip.frames[0].shape[:2]
    tiles = variant_tiles(clip, v, settings)
    conf = settings.conf if clip.gold else CONF
    out = []
    for per_frame in found:
        per_tile = [(t, [b for b in per_frame[t] if b.conf >= conf]) for t in tiles]
        out.append(merge_levels(per_tile, w, h, v, settings.merge_threshold))
    return len(tiles), out


def clips(n: int, settings: AnnotateSettings, mosaic_frames: int) -> list:
    native = NativeDetector(**{**settings.detector_spec(), "conf": CONF, "runtime": "opencv"})  # as bench_accuracy
    q = settings.jpeg_quality
    out = []

    def clip(name, frames, truth, gold):
        s = content_scale(frames[:: max(1, len(frames) // SAMPLE_FRAMES)][:SAMPLE_FRAMES])
        out.append(Clip(name, [as_annotated(f, q) for f in frames], truth, s, gold))

    picks = [[(f * 9 + c) * 795 // (9 * n) for c in range(9)] for f in range(n)]
    clip("crowded", *grid_clip(picks, native), False)
    natives = vtest_frames([f * 795 // n + 40 for f in range(n)])
    large = [cv2.resize(f, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR) for f in natives.values()]
    clip("large", large, [scale(native.detect(f), 3.0) for f in natives.values()], False)
    clip("native-large", *native_large_clip(n, lambda image: native_boxes(native, image)), False)
    gold_set.build_images()
    frames = gold_set.load()
    vtest = [f for f in frames if f.name.startswith("vtest_")]
    clip("gold-vtest", [cv2.imread(str(f.image)) for f in vtest], [list(f.boxes) for f in vtest], True)
    clip("gold-mosaic", *bench_gold.mosaic_gold(frames, mosaic_frames), True)
    return out


VARIANTS = (
    Variant("vision.merge.merge_tiles on vision.pipeline.frame_tiles", current=True),
    Variant("same rule, re-implemented"),
    Variant("no piece joining", join=False),
    Variant("home full frame", home=True),
    Variant("home full frame, absorbs cut", home=True, absorb="cut"),
    Variant("home full frame, absorbs all", home=True, absorb="all"),
    Variant("home full frame, absorbs all, no join", home=True, absorb="all", join=False),
    Variant("1+2", levels=(1, 2)),
    Variant("1+2 home", levels=(1, 2), home=True),
    Variant("1+2 home absorbs cut", levels=(1, 2), home=True, absorb="cut"),
    Variant("1+2 home absorbs all", levels=(1, 2), home=True, absorb="all"),
    Variant("1+2 home absorbs all, no join", levels=(1, 2), home=True, absorb="all", join=False),
    Variant("1+2 home absorbs all, twin drop", levels=(1, 2), home=True, absorb="all", twin_drop=True),
    Variant("1+2 coarse first", levels=(1, 2), coarse_first=True),
    Variant("1+2 coarse first, absorbs unseen", levels=(1, 2), coarse_first=True, absorb="unseen"),
    Variant("1+2 coarse first, absorbs all", levels=(1, 2), coarse_first=True, absorb="all"),
    Variant("1+2 coarse first, twin drop", levels=(1, 2), coarse_first=True, twin_drop=True),
    Variant("1+2 cf, unseen, twin drop", levels=(1, 2), coarse_first=True, absorb="unseen", twin_drop=True),
    Variant(
        "1+2 cf, unseen, twin drop, no join",
        levels=(1, 2),
        coarse_first=True,
        absorb="unseen",
        twin_drop=True,
        join=False,
    ),
    Variant(
        "1+2 cf, unseen, held twin drop",
        levels=(1, 2),
        coarse_first=True,
        absorb="unseen",
        twin_drop=True,
        twin_held=True,
    ),
    Variant(
        "1+2 cf, unseen, held twin drop, no join",
        levels=(1, 2),
        coarse_first=True,
        absorb="unseen",
        twin_drop=True,
        twin_held=True,
        join=False,
    ),
    Variant(
        "1+2 cf, unseen, held tile twin drop",
        levels=(1, 2),
        coarse_first=True,
        absorb="unseen",
        twin_drop=True,
        twin_held=True,
        twin_tiles=True,
    ),
    Variant("1+2+4 cf, unseen, twin drop", levels=(1, 2, 4), coarse_first=True, absorb="unseen", twin_drop=True),
    Variant("1+3 cf, unseen, twin drop", levels=(1, 3), coarse_first=True, absorb="unseen", twin_drop=True),
    Variant("1+1.5+3 cf, unseen, twin drop", levels=(1, 1.5, 3), coarse_first=True, absorb="unseen", twin_drop=True),
    Variant(
        "1+2 cf, unseen, twin drop, rule 5 all tiles",
        levels=(1, 2),
        coarse_first=True,
        absorb="unseen",
        twin_drop=True,
        seen_level=False,
    ),
    Variant("1+2+4 home absorbs all", levels=(1, 2, 4), home=True, absorb="all"),
    Variant("1+2+4 home absorbs all, no join", levels=(1, 2, 4), home=True, absorb="all", join=False),
    Variant("1+1.5+3 home absorbs all", levels=(1, 1.5, 3), home=True, absorb="all"),
    Variant("1+3 home absorbs all", levels=(1, 3), home=True, absorb="all"),
    Variant("1+2+3+4 home absorbs all", levels=(1, 2, 3, 4), home=True, absorb="all"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2, help="frames per bench_accuracy clip")
    ap.add_argument("--mosaic-frames", type=int, default=3, help="pan phases of the gold mosaic")
    ap.add_argument("--only", default=None, help="run only variants whose name contains this")
    ap.add_argument("--threshold", type=float, default=None, help="merge threshold (default: the settings')")
    args = ap.parse_args()
    files = asset_cache.yolov3_tiny_files()
    settings = AnnotateSettings(model=ModelSpec(**files))
    if args.threshold is not None:
        settings = dataclasses.replace(settings, merge_threshold=args.threshold)
    detector = Detector(**settings.detector_spec())
    print(f"machine: {os.cpu_count()} cores (shared, loaded), OpenCV {cv2.__version__}; {Path(files['cfg']).name}")
    start = time.perf_counter()
    all_clips = clips(args.frames, settings, args.mosaic_frames)
    key = f"{Path(files['cfg']).stem}-{settings.runtime}"
    found = {c.name: detections(c, settings, detector, key) for c in all_clips}
    print(f"detections ready ({time.perf_counter() - start:.0f} s); scores: recall/precision (1:1 reference, conf 0.3)")
    classes = read_classes(gold_set.GOLD_DIR / "classes.txt")
    variants = [v for v in VARIANTS if args.only is None or args.only in v.name]
    for v in variants:
        cells, gold, given = [], [], []
        for c in all_clips:
            forwards, out = run_variant(c, found[c.name], v, settings)
            s = sum((score_frame(p, t) for p, t in zip(out, c.truth)), Score())
            if c.gold:
                ap50, _ = bench_gold.coco_ap(c.truth, out, classes)
                cells.append(f"{c.name} {forwards}f AP50 {100 * ap50:4.1f} r {s.recall:.3f} p {s.precision:.3f}")
                gold += c.truth
                given += out
            else:
                cells.append(f"{c.name} {forwards}f {s.recall:.3f}/{s.precision:.3f} dup {s.duplicates}")
        ap50, _ = bench_gold.coco_ap(gold, given, classes)
        print(f"{v.name}:\n  " + "; ".join(cells) + f"; gold AP50 {100 * ap50:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
