"""The review queue: which frames a person should open first, and why. No inference: it reads
detections.jsonl (every tile's raw boxes and the merged ones, with confidences).

A frame's doubt is the weighted count of its reasons:

    weight  reason
    3       a box filled in over a gap of a track (`filled` in detections.jsonl): never seen there
    2       tile disagreement: an object lying wholly inside several overlapping tiles that some
            found and some missed (they saw the same pixels at the same scale, so some are wrong)
    2       full-frame vs tiles: a box the full-frame pass found inside a tile that missed it, or
            a box the tiles found that is big enough for the full-frame pass (at least one cell
            of the net's 32 px grid at its input size) and that pass missed
    2       a cut box nothing explains: every tile that saw it cut it at an inner edge, and no box
            seen whole (by a tile or the full-frame pass) of its class covers it; it may be a
            piece of a large object that no tile holds, with the wrong extent
    1.5     a box living one frame only: no same-class box near it in the sampled frames before
            and after it (centres at most one object size apart, sizes within a factor 2, so an
            object that walks between sampled frames still counts as the same)
    1.5     a box inside another of its class (INSIDE of its area covered): pieces of one large
            object that no rule joined, or one object occluding another
    1       a box with a confidence between the threshold and 0.5
    1       a count jump: the number of boxes differs from the mean of its two neighbours by at
            least 2 and by at least a quarter

Frames are ranked by doubt, highest first (then by name). Frames a person already corrected are
left out: they have been looked at.
"""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .boxes import Box, corners, overlap_with
from .corrections import corrected_frames, recorded_hashes
from .datasets import RECORD_NAME, read_run_settings
from .detections import DETECTIONS_NAME, merged_boxes, raw_detections, read_detections
from .errors import VisionError
from .files import write_text_atomic
from .frames import IMAGES_DIR, read_video_meta
from .labels import read_classes, read_yolo_labels, row_to_box
from .merge import cut_sides, inside
from .preview import contact_sheet, draw_boxes, write_image
from .tiling import Tile

REVIEW_NAME = "review.txt"
SHEET_NAME = "review_sheet.png"
UNSURE_BELOW = 0.5
SAME_OBJECT_IOU = 0.5
GRID = 32  # pixels: one cell of a YOLO net's coarsest grid

INSIDE = 0.9  # share of a box's area another box must cover for it to lie inside that box

WEIGHTS = {
    "filled": 3.0,
    "tiles": 2.0,
    "full_frame": 2.0,
    "cut": 2.0,
    "one_frame": 1.5,
    "nested": 1.5,
    "unsure": 1.0,
    "count_jump": 1.0,
}


@dataclass
class FrameDoubt:
    """One frame's place in the queue: its doubt, the reasons in words, the boxes to look at."""

    frame: str
    score: float = 0.0
    reasons: list = field(default_factory=list)
    boxes: list = field(default_factory=list)  # Box in frame pixels, drawn dashed on the sheet

    def add(self, kind: str, count: int, words: str, boxes=()) -> None:
        if count:
            self.score += WEIGHTS[kind] * count
            self.reasons.append(words)
            self.boxes.extend(boxes)


def _found(box: Box, others, iou: float) -> bool:
    same = [o for o in others if o.cls == box.cls]
    return bool(same) and bool((overlap_with(np.array([box.x1, box.y1, box.x2, box.y2]), corners(same)) >= iou).any())


def _near(box: Box, others) -> bool:
    """Whether a same-class box of `others` is the same object moved: centres at most one object
    size apart, widths and heights within a factor 2."""
    for o in others:
        if o.cls != box.cls:
            continue
        size = max(box.width, box.height, o.width, o.height)
        close = (
            abs((box.x1 + box.x2) - (o.x1 + o.x2)) / 2 <= size and abs((box.y1 + box.y2) - (o.y1 + o.y2)) / 2 <= size
        )
        if close and all(0.5 <= a / max(b, 1e-9) <= 2.0 for a, b in ((box.width, o.width), (box.height, o.height))):
            return True
    return False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("x") else f"{n} {word}s"


def _tile_disagreements(tiles: list, width: int, height: int) -> list:
    """One box per object that some tiles holding it whole found and others of the same size missed
    (a coarse tile sees the object at another scale: vision/merge.py, rule 5). The tiles' uncut
    boxes are grouped into objects (same class, IoU >= 0.5, best confidence first)."""
    boxes = sorted(
        ((b, t) for t, found in tiles for b in found if not any(cut_sides(b, t, width, height))),
        key=lambda e: e[0].sort_key(),
    )
    objects = []  # [representative box, set of tiles that found it]
    for b, t in boxes:
        for o in objects:
            if _found(b, [o[0]], SAME_OBJECT_IOU):
                o[1].add(t)
                break
        else:
            objects.append([b, {t}])
    return [
        b
        for b, found in objects
        if any(
            u not in found
            and u.w * u.h == min(t.w * t.h for t in found)
            and inside(b, u)
            and not _found(b, bs, SAME_OBJECT_IOU)
            for u, bs in tiles
        )
    ]


def _covered(box: Box, by: Box) -> float:
    """The share of `box`'s area that `by` covers."""
    ix = max(0.0, min(box.x2, by.x2) - max(box.x1, by.x1))
    iy = max(0.0, min(box.y2, by.y2) - max(box.y1, by.y1))
    return ix * iy / box.area if box.area > 0 else 0.0


def _cut_unexplained(merged: list, raw: list, width: int, height: int) -> list:
    """Merged boxes that every tile which saw them cut at an inner edge, with no box of their class
    seen whole (uncut in its tile, or by the full-frame pass, which has no inner edge) covering at
    least half of them."""
    whole = [b for t, bs in raw for b in bs if not any(cut_sides(b, t, width, height))]
    return [
        b
        for b, tiles in merged
        if tiles
        and all(any(cut_sides(b, t, width, height)) for t in tiles)
        and not any(w.cls == b.cls and _covered(b, w) >= 0.5 for w in whole)
    ]


def _nested(boxes: list) -> list:
    """The smaller box of each same-class pair where it lies inside the larger (INSIDE of its area)."""
    return [
        small
        for small in boxes
        if any(
            o is not small and o.cls == small.cls and o.area > small.area and _covered(small, o) >= INSIDE
            for o in boxes
        )
    ]


def frame_doubts(records: list, width: int, height: int, conf: float, input_size: int) -> list:
    """[FrameDoubt] of each frame of `records` (detections.jsonl records, in frame order)."""
    merged = [[b for b, _ in merged_boxes(r)] for r in records]
    counts = [len(m) for m in merged]
    full = Tile(0, 0, width, height)
    out = []
    for i, record in enumerate(records):
        doubt = FrameDoubt(record["frame"])
        boxes = merged[i]
        filled = [Box(b["cls"], b["conf"], *b["xyxy"]) for b in record["boxes"] if b.get("filled")]
        doubt.add("filled", len(filled), f"{_plural(len(filled), 'box')} filled in over a gap", filled)

        raw = raw_detections(record)
        tiles = [(t, bs) for t, bs in raw if t != full]
        missed = _tile_disagreements(tiles, width, height)
        doubt.add("tiles", len(missed), f"{_plural(len(missed), 'object')} some overlapping tiles missed", missed)

        whole = [bs for t, bs in raw if t == full]
        if whole and tiles:
            tile_boxes = [b for _, bs in tiles for b in bs]
            only_full = [
                b
                for b in whole[0]
                if any(inside(b, t) for t, _ in tiles) and not _found(b, tile_boxes, SAME_OBJECT_IOU)
            ]
            scale = input_size / max(width, height)
            only_tiles = [
                b for b in boxes if min(b.width, b.height) * scale >= GRID and not _found(b, whole[0], SAME_OBJECT_IOU)
            ]
            n = len(only_full) + len(only_tiles)
            doubt.add(
                "full_frame",
                n,
                f"{_plural(n, 'box')} the full-frame pass and the tiles disagree on",
                only_full + only_tiles,
            )

        cut = _cut_unexplained(merged_boxes(record), raw, width, height)
        doubt.add("cut", len(cut), f"{_plural(len(cut), 'box')} cut by a tile edge that no whole box explains", cut)
        nested = _nested(boxes)
        doubt.add("nested", len(nested), f"{_plural(len(nested), 'box')} inside another of its class", nested)

        neighbours = [merged[j] for j in (i - 1, i + 1) if 0 <= j < len(records)]
        if neighbours:
            lonely = [b for b in boxes if not any(_near(b, m) for m in neighbours)]
            doubt.add("one_frame", len(lonely), f"{_plural(len(lonely), 'box')} living one frame only", lonely)

        unsure = sorted((b for b in boxes if conf <= b.conf < UNSURE_BELOW), key=lambda b: b.conf)
        doubt.add(
            "unsure",
            len(unsure),
            f"{_plural(len(unsure), 'box')} below {UNSURE_BELOW} confidence "
            f"({', '.join(f'{b.conf:.2f}' for b in unsure[:4])})",
            unsure,
        )

        if 0 < i < len(records) - 1:
            expected = (counts[i - 1] + counts[i + 1]) / 2
            if abs(counts[i] - expected) >= max(2.0, expected / 4):
                doubt.add("count_jump", 1, f"{counts[i]} boxes against {counts[i - 1]} and {counts[i + 1]} around")
        out.append(doubt)
    return out


def rank(doubts: list, skip=()) -> list:
    """The doubtful frames (score > 0) not in `skip`, most doubtful first, then by name."""
    skip = set(skip)
    return sorted((d for d in doubts if d.score > 0 and d.frame not in skip), key=lambda d: (-d.score, d.frame))


def format_review(ranked: list, frames: int, corrected: int) -> str:
    """review.txt: a header, then one line per doubtful frame: name, doubt, reasons."""
    head = (
        "# frames to review first, most doubtful first: frame  doubt  reasons (see vision/review.py)\n"
        f"# {frames} frames, {len(ranked)} with a doubt"
        + (f", {corrected} corrected by a person left out" if corrected else "")
        + "\n"
    )
    return head + "".join(f"{d.frame}  {d.score:4.1f}  {'; '.join(d.reasons)}\n" for d in ranked)


def _dashed_rectangle(image: np.ndarray, box: Box, color, thickness: int, dash: int = 8) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in (box.x1, box.y1, box.x2, box.y2))
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for s in range(0, length, 2 * dash):
            e = min(s + dash, length)
            p = (a[0] + (b[0] - a[0]) * s // max(length, 1), a[1] + (b[1] - a[1]) * s // max(length, 1))
            q = (a[0] + (b[0] - a[0]) * e // max(length, 1), a[1] + (b[1] - a[1]) * e // max(length, 1))
            cv2.line(image, p, q, color, thickness)


def review_sheet(video_dir, ranked: list, names, top: int = 12, columns: int = 4, cell_width: int = 384) -> np.ndarray:
    """The `top` most doubtful frames: their labels drawn as in the previews, the doubtful boxes
    dashed (white), the frame name and doubt written in the corner."""
    video_dir = Path(video_dir)
    cells = []
    for d in ranked[:top]:
        image = cv2.imread(str(video_dir / IMAGES_DIR / f"{d.frame}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            raise VisionError(
                f"cannot read frame image {video_dir / IMAGES_DIR / d.frame}.jpg; annotate the video again"
            )
        h, w = image.shape[:2]
        label = video_dir / "labels" / f"{d.frame}.txt"
        rows = read_yolo_labels(label) if label.exists() else []
        drawn = draw_boxes(image, [row_to_box(r, w, h) for r in rows], names)
        thickness = max(2, round(min(h, w) / 200))
        for b in d.boxes:
            _dashed_rectangle(drawn, b, (255, 255, 255), thickness)
        text = f"{d.frame}  doubt {d.score:.1f}"
        scale = max(0.6, w / 900)
        cv2.putText(drawn, text, (8, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(drawn, text, (8, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(drawn)
    return contact_sheet(cells, columns, cell_width)


def write_review(video_dir, records: list, video_meta: dict, conf: float, input_size: int, corrected=()) -> list:
    """review.txt beside the labels; returns the ranked FrameDoubts (corrected frames left out)."""
    doubts = frame_doubts(records, video_meta["width"], video_meta["height"], conf, input_size)
    ranked = rank(doubts, corrected)
    write_text_atomic(Path(video_dir) / REVIEW_NAME, format_review(ranked, len(records), len(set(corrected))))
    return ranked


def review_video(video_dir, top: int = 12) -> list:
    """review.txt and review_sheet.png (the `top` worst frames) of one annotated video, from its
    detections.jsonl; returns the ranked FrameDoubts. Frames a person corrected are left out."""
    video_dir = Path(video_dir)
    settings = read_run_settings(video_dir / RECORD_NAME)
    meta = read_video_meta(video_dir)
    records = read_detections(video_dir / DETECTIONS_NAME)
    missing = [n for n in meta["frames"] if n not in records]
    if missing:
        raise VisionError(f"{video_dir / DETECTIONS_NAME} has no record of frame {missing[0]}; annotate again")
    conf = settings.get("conf", 0.25)
    input_size = (settings.get("model") or {}).get("input_size", 416)
    corrected = corrected_frames(video_dir / "labels", recorded_hashes(video_dir / RECORD_NAME))
    ranked = write_review(video_dir, [records[n] for n in meta["frames"]], meta, conf, input_size, corrected)
    names = read_classes(video_dir / "classes.txt")
    if ranked:
        write_image(video_dir / SHEET_NAME, review_sheet(video_dir, ranked, names, top))
    return ranked
