"""Join the boxes of all tiles of a frame into one set of frame boxes.

An object near a tile border is seen by two or more tiles, whole or in parts. Two ways to keep
one box per object, as in SAHI's postprocessing:

* 'nms': class-wise non-maximum suppression; the most confident box wins, boxes that match it
  are dropped.
* 'greedy': greedy box merging; boxes that match the most confident one are joined into it (the
  union of their rectangles, the highest confidence), so an object cut by a border becomes one
  box that spans both parts.

The match metric is IoU, or IoS (intersection over the smaller box), which also matches a part
lying inside the whole. Greedy merging over IoS also joins a large low-confidence box into a
confident small one inside it, so NMS is the safer default when tiles overlap more than objects
are large. The result does not depend on the order of the input boxes.
"""

import numpy as np

from .boxes import Box, overlap_with, sort_boxes
from .errors import VisionError
from .tiling import Tile

MERGE_METHODS = ("nms", "greedy")
MERGE_METRICS = ("iou", "ios")


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


def merge_boxes(
    boxes, method: str = "nms", metric: str = "iou", threshold: float = 0.5, class_agnostic: bool = False
) -> list:
    """One box per object from overlapping detections, in canonical order.

    Two boxes match when they have the same class (any class if `class_agnostic`) and their
    `metric` overlap exceeds `threshold`. Boxes are visited by confidence, highest first
    (ties broken by class and corners); each unvisited box claims the unvisited boxes that
    match it: 'nms' drops them, 'greedy' joins them into it. Returns boxes sorted by
    confidence desc, then class and corners.
    """
    check_merge_args(method, metric, threshold)
    ordered = sort_boxes(boxes)
    if not ordered:
        return []
    corners = np.array([[b.x1, b.y1, b.x2, b.y2] for b in ordered], dtype=np.float64)
    classes = np.array([b.cls for b in ordered])
    free = np.ones(len(ordered), dtype=bool)
    kept = []
    for i, seed in enumerate(ordered):
        if not free[i]:
            continue
        free[i] = False
        candidates = free.copy()
        if not class_agnostic:
            candidates &= classes == seed.cls
        idx = np.flatnonzero(candidates)
        matched = idx[overlap_with(corners[i], corners[idx], metric) > threshold] if len(idx) else idx
        free[matched] = False
        if method == "greedy" and len(matched):
            group = corners[np.concatenate(([i], matched))]
            seed = Box(
                seed.cls,
                seed.conf,
                float(group[:, 0].min()),
                float(group[:, 1].min()),
                float(group[:, 2].max()),
                float(group[:, 3].max()),
            )
        kept.append(seed)
    return sort_boxes(kept)
