"""The merge the tile-aware rule replaced, kept to measure that rule against (bench_accuracy.py).

`merge_boxes` pools every tile's boxes and runs one NMS (or greedy union) over them, blind to which
tile saw what; vision/merge.py's `merge_tiles` is what `cvfleet annotate` runs. How the two compare:
docs/design.md, "Measured history of vision/".
"""

import numpy as np

from vision.boxes import Box, overlap_with, sort_boxes
from vision.merge import check_merge_args


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
