"""Boxes in pixel coordinates and the overlap measures used to match them.

A `Box` crosses the Celery broker as JSON, so it converts to and from a list of plain numbers;
Python floats survive a JSON round trip exactly, which keeps distributed and single-process
results identical.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """One detection: class index, confidence in 0..1, corners (x1, y1) - (x2, y2) in pixels."""

    cls: int
    conf: float
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def to_json(self) -> list:
        """[cls, conf, x1, y1, x2, y2] as plain Python numbers."""
        return [int(self.cls), float(self.conf), float(self.x1), float(self.y1), float(self.x2), float(self.y2)]

    @classmethod
    def from_json(cls, data) -> "Box":
        c, conf, x1, y1, x2, y2 = data
        return cls(int(c), float(conf), float(x1), float(y1), float(x2), float(y2))

    def sort_key(self) -> tuple:
        """Confidence descending, then class and corners: a total, deterministic order."""
        return (-self.conf, self.cls, self.x1, self.y1, self.x2, self.y2)


def boxes_to_json(boxes) -> list:
    return [b.to_json() for b in boxes]


def boxes_from_json(data) -> list:
    return [Box.from_json(d) for d in data]


def corners(boxes) -> np.ndarray:
    """The boxes' (x1, y1, x2, y2) as an (N, 4) float array, the form `overlap_with` takes."""
    return np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=np.float64).reshape(-1, 4)


def sort_boxes(boxes) -> list:
    """Boxes in the canonical order (confidence desc, then class and corners)."""
    return sorted(boxes, key=Box.sort_key)


def overlap_with(corners: np.ndarray, others: np.ndarray, metric: str = "iou") -> np.ndarray:
    """Overlap of one box with many, as a ratio in 0..1.

    `corners` is (4,) and `others` is (n, 4), both x1, y1, x2, y2 in any common unit
    (pixels or normalized: both ratios are unchanged by scaling an axis).
    metric 'iou': intersection over union; 'ios': intersection over the smaller box's area,
    which is 1 when one box lies inside the other (a part of an object cut by a tile border).
    """
    ix = np.clip(np.minimum(corners[2], others[:, 2]) - np.maximum(corners[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(corners[3], others[:, 3]) - np.maximum(corners[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = max(0.0, corners[2] - corners[0]) * max(0.0, corners[3] - corners[1])
    areas = np.clip(others[:, 2] - others[:, 0], 0, None) * np.clip(others[:, 3] - others[:, 1], 0, None)
    if metric == "iou":
        denom = area + areas - inter
    elif metric == "ios":
        denom = np.minimum(area, areas)
    else:
        raise ValueError(f"unknown overlap metric {metric!r}; use 'iou' or 'ios'")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, inter / np.where(denom > 0, denom, 1), 0.0)
