"""Scoring boxes against a reference: one-to-one matching, recall, precision, leftover duplicates.

Used by the accuracy benchmarks (and by anyone checking labels against a hand-made reference). A
predicted box and a reference box match when they have the same class and IoU >= `iou`; the
matching is one-to-one and maximises total IoU (Hungarian assignment), so a duplicate box can
never match twice and a true box is counted once.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import corners, overlap_with


@dataclass
class Score:
    """Counts over any number of frames; add Scores to pool frames."""

    matched: int = 0
    predicted: int = 0
    reference: int = 0
    duplicates: int = 0  # same-class pairs of predicted boxes, one inside the other (IoS > 0.8)

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 1.0

    def __add__(self, other: "Score") -> "Score":
        return Score(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple:
        return self.matched, self.predicted, self.reference, self.duplicates


def score_frame(predicted, reference, iou: float = 0.5) -> Score:
    """One frame's Score: boxes are `vision.boxes.Box` (class and corners are used)."""
    matched = 0
    for cls in {b.cls for b in predicted} & {b.cls for b in reference}:
        p = corners([b for b in predicted if b.cls == cls])
        r = corners([b for b in reference if b.cls == cls])
        ious = np.stack([overlap_with(row, r, "iou") for row in p])
        rows, cols = linear_sum_assignment(ious, maximize=True)
        matched += int((ious[rows, cols] >= iou).sum())
    duplicates = 0
    for cls in {b.cls for b in predicted}:
        p = corners([b for b in predicted if b.cls == cls])
        for i in range(len(p) - 1):
            duplicates += int((overlap_with(p[i], p[i + 1 :], "ios") > 0.8).sum())
    return Score(matched, len(predicted), len(reference), duplicates)
