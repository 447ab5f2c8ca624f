"""Labels over time: link each frame's merged boxes into tracks, fill short gaps, drop flicker.

A detector labels each frame alone, so an object seen at t-1 and t+1 but missed at t stays
missed, and a false box that flickers in for one frame stays. Both show as tracks:

* **Linking.** Class by class, frame after frame (the sampled frames, in order), each box joins
  the track whose last box it overlaps best (IoU >= 0.3), by one assignment over all pairs
  (`scipy.optimize.linear_sum_assignment`), among the tracks last seen at most `gap` + 1 frames
  back. A box no track takes starts one.
* **Fill** (`--temporal fill`). A track missing from at most `gap` frames between two of its
  boxes, both confident (>= 0.5, the review's line between sure and unsure), gets a box in each
  missing frame, interpolated linearly between them, with the lower of their confidences, unless
  a same-class box already lies there (IoU > 0.5). Filled boxes are marked `filled` in
  detections.jsonl, and `cvfleet review` ranks their frames first.

  On a clip with every 4th frame motion-blurred, filling took recall from 0.727 to 0.830 and
  precision from 0.765 to 0.777 (benchmarks/bench_temporal.py). Only confident ends, because
  filling between unsure sightings fills the flicker of false boxes too (docs/design.md,
  "Measured history of vision/").
* **Clean** (`--temporal clean`). A track of one frame whose box is below confidence 0.4 is
  dropped as flicker. `both` does the two.

Pure: boxes in, boxes out, in a deterministic order; no files.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import Box, corners, overlap_with, sort_boxes
from .errors import VisionError

TEMPORAL_MODES = ("off", "fill", "clean", "both")
LINK_IOU = 0.3
FLICKER_CONF = 0.4
FILL_MIN_CONF = 0.5
DUPLICATE_IOU = 0.5
MAX_GAP = 10


@dataclass
class Track:
    cls: int
    members: list = field(default_factory=list)  # (frame index, Box), frames increasing

    @property
    def last(self) -> tuple:
        return self.members[-1]


def check_temporal(mode: str, gap: int) -> None:
    if mode not in TEMPORAL_MODES:
        raise VisionError(f"temporal must be one of {', '.join(TEMPORAL_MODES)}, got {mode!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or not 1 <= gap <= MAX_GAP:
        raise VisionError(f"fill gap must be a whole number of frames from 1 to {MAX_GAP}, got {gap!r}")


def link_tracks(frames: list, gap: int = 2, min_iou: float = LINK_IOU) -> list:
    """Tracks over `frames` (a list, per frame, of Boxes). Deterministic for a given input."""
    tracks = []
    for t, boxes in enumerate(frames):
        boxes = sort_boxes(boxes)
        for cls in sorted({b.cls for b in boxes}):
            new = [b for b in boxes if b.cls == cls]
            open_ = [tr for tr in tracks if tr.cls == cls and 0 < t - tr.last[0] <= gap + 1]
            taken = set()
            if open_:
                iou = np.stack([overlap_with(corners([tr.last[1]])[0], corners(new), "iou") for tr in open_])
                rows, cols = linear_sum_assignment(-iou)
                for r, c in zip(rows, cols):
                    if iou[r, c] >= min_iou:
                        open_[r].members.append((t, new[c]))
                        taken.add(c)
            tracks.extend(Track(cls, [(t, b)]) for c, b in enumerate(new) if c not in taken)
    return tracks


def _lerp(a: Box, b: Box, k: float) -> Box:
    return Box(
        a.cls,
        min(a.conf, b.conf),
        a.x1 + (b.x1 - a.x1) * k,
        a.y1 + (b.y1 - a.y1) * k,
        a.x2 + (b.x2 - a.x2) * k,
        a.y2 + (b.y2 - a.y2) * k,
    )


def fill_gaps(tracks: list, frames: list, gap: int = 2) -> list:
    """Per frame, the interpolated boxes of the confident tracks that miss it for at most `gap` frames."""
    filled = [[] for _ in frames]
    for tr in tracks:
        for (f0, b0), (f1, b1) in zip(tr.members, tr.members[1:]):
            if f1 - f0 - 1 > gap or min(b0.conf, b1.conf) < FILL_MIN_CONF:
                continue
            for f in range(f0 + 1, f1):
                box = _lerp(b0, b1, (f - f0) / (f1 - f0))
                present = [b for b in (*frames[f], *filled[f]) if b.cls == box.cls]
                if present and (overlap_with(corners([box])[0], corners(present), "iou") > DUPLICATE_IOU).any():
                    continue
                filled[f].append(box)
    return [sort_boxes(f) for f in filled]


def flicker(tracks: list, conf: float = FLICKER_CONF) -> set:
    """(frame index, Box) of the one-frame tracks below `conf`."""
    return {tr.members[0] for tr in tracks if len(tr.members) == 1 and tr.members[0][1].conf < conf}


def over_time(frames: list, mode: str, gap: int = 2) -> tuple[list, list]:
    """(kept, filled): per frame, the indices into that frame's boxes that stay, and the boxes
    filled in. mode: one of TEMPORAL_MODES."""
    check_temporal(mode, gap)
    kept = [list(range(len(f))) for f in frames]
    if mode == "off":
        return kept, [[] for _ in frames]
    tracks = link_tracks(frames, gap)
    if mode in ("clean", "both"):
        drop = flicker(tracks)
        kept = [[i for i, b in enumerate(f) if (t, b) not in drop] for t, f in enumerate(frames)]
        tracks = [tr for tr in tracks if tr.members[0] not in drop]
    if mode in ("fill", "both"):
        remaining = [[frames[t][i] for i in k] for t, k in enumerate(kept)]
        return kept, fill_gaps(tracks, remaining, gap)
    return kept, [[] for _ in frames]
