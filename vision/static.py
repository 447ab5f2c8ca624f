"""Static objects: boxes a person drew once that hold in every frame (a fixed camera's scene).

`static_labels.txt` is a YOLO label file (drawn in LabelImg on any one frame). Propagation
appends its boxes to every frame's label file unless the frame already has a same-class box in
that place, so running it twice changes nothing. Suggestions go the other way: boxes the
detector finds in the same place in nearly every frame are proposed as static objects.

Static negatives: `static_ignore.txt`, same format, lists false boxes that stand still (a "bird"
that is a lamp). A detection of the same class at IoU > 0.5 with one of its lines is suppressed in
every frame. `learn_ignore` proposes its lines from a person's corrections: boxes the person
deleted that match a box the detector saw standing still (in at least 30 % of the frames).
"""

import hashlib
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .boxes import overlap_with
from .errors import VisionError
from .labels import LabelRow, format_labels, parse_labels

FRAME_LABEL_NAME = re.compile(r"^\d+\.txt$")
DUPLICATE_IOU = 0.5
SUGGESTIONS_NAME = "static_suggestions.txt"
IGNORE_SUGGESTIONS_NAME = "static_ignore_suggestions.txt"
STANDING_STILL = 0.3  # share of the frames a learned negative must stand still in


class Statics(NamedTuple):
    """A person's scene-wide boxes: `labels` added to every frame, `ignore` suppressed in every frame."""

    labels: tuple = ()
    ignore: tuple = ()

    def sha256(self) -> dict:
        """The hashes a record keeps of each (None for one not given), so a change relabels."""
        return {
            "static_sha256": _rows_sha256(self.labels) if self.labels else None,
            "ignore_sha256": _rows_sha256(self.ignore) if self.ignore else None,
        }


NO_STATICS = Statics()


def _rows_sha256(rows) -> str:
    return hashlib.sha256(format_labels(rows).encode("ascii")).hexdigest()


def read_statics(labels_path=None, ignore_path=None) -> Statics:
    """The static boxes and static negatives from their files (either may be None)."""
    return Statics(
        tuple(read_static_labels(labels_path)) if labels_path else (),
        tuple(read_static_labels(ignore_path, "--static-ignore")) if ignore_path else (),
    )


def read_static_labels(path, option: str = "--static") -> list:
    """Rows of a static labels file; VisionError (file, line, reason) if unreadable or malformed.

    Coordinates are rounded to the 6 decimals of a label file, so a propagated row reads back
    equal to its static row (which is how `suggest_static` can leave them out).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VisionError(f"static labels file not found: {path}; check the {option} path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VisionError(
            f"cannot read static labels {path}: {e.__class__.__name__}; "
            "give a YOLO label text file (LabelImg, YOLO format)"
        ) from None
    return [LabelRow(r.cls, *(float(f"{v:.6f}") for v in r[1:])) for r in parse_labels(text, str(path))]


def frame_label_files(labels_dir) -> list:
    """The per-frame label files (000001.txt ...) of a labels dir, in frame order."""
    return sorted(p for p in Path(labels_dir).iterdir() if FRAME_LABEL_NAME.match(p.name))


def _corners(rows) -> np.ndarray:
    return np.array([r.corners() for r in rows], dtype=np.float64).reshape(-1, 4)


def add_static_rows(rows, static_rows, iou: float = DUPLICATE_IOU) -> list:
    """`rows` plus each static row that no same-class row (already there or just added) overlaps
    with IoU > `iou`. Pure: the rule that makes propagation idempotent."""
    out = list(rows)
    for s in static_rows:
        same = [r for r in out if r.cls == s.cls]
        if same and (overlap_with(np.array(s.corners()), _corners(same), "iou") > iou).any():
            continue
        out.append(LabelRow(*s))
    return out


def _median_row(cls: int, members: list) -> LabelRow:
    c = np.median(_corners(members), axis=0)
    return LabelRow(
        cls,
        float(f"{(c[0] + c[2]) / 2:.6f}"),
        float(f"{(c[1] + c[3]) / 2:.6f}"),
        float(f"{c[2] - c[0]:.6f}"),
        float(f"{c[3] - c[1]:.6f}"),
    )


def find_static_rows(frames_rows, iou: float = 0.7, min_fraction: float = 0.9) -> list:
    """Boxes that stay in place: same class, IoU >= `iou` with a reference box, in at least
    `min_fraction` of the frames. Pure; `frames_rows` is a list (one per frame) of row lists.

    Each box joins the first candidate (in order of first appearance) whose reference box (its
    first box) it matches, at most once per frame; otherwise it starts a new candidate. A
    suggestion is the per-coordinate median of its candidate's boxes.
    """
    if not 0.0 < min_fraction <= 1.0 or not 0.0 < iou <= 1.0:
        raise VisionError(f"static suggestion needs iou and min_fraction in (0, 1], got {iou}, {min_fraction}")
    classes, refs, members, last = [], [], [], []
    for f, rows in enumerate(frames_rows):
        known = len(refs)
        ref_array = np.array(refs, dtype=np.float64).reshape(-1, 4)
        class_array = np.array(classes, dtype=np.int64)
        for r in rows:
            hit = (
                np.flatnonzero(
                    (class_array == r.cls)
                    & (np.array(last[:known]) != f)
                    & (overlap_with(np.array(r.corners()), ref_array, "iou") >= iou)
                )
                if known
                else []
            )
            if len(hit):
                members[hit[0]].append(r)
                last[hit[0]] = f
            else:
                classes.append(r.cls)
                refs.append(r.corners())
                members.append([r])
                last.append(f)
    n = len(frames_rows)
    return [_median_row(cls, group) for cls, group in zip(classes, members) if n and len(group) / n >= min_fraction]


def suppress(rows, ignore_rows, iou: float = DUPLICATE_IOU) -> list:
    """`rows` without those matching a static negative (same class, IoU > `iou`). Pure."""
    out = []
    for r in rows:
        same = [g for g in ignore_rows if g.cls == r.cls]
        if same and (overlap_with(np.array(r.corners()), _corners(same), "iou") > iou).any():
            continue
        out.append(r)
    return out


def learn_ignore(auto_rows: dict, kept: dict, iou: float = DUPLICATE_IOU) -> list:
    """Static-negative proposals: boxes the detector saw standing still (`find_static_rows` over
    the automatic rows, in at least STANDING_STILL of the frames) that a person deleted from a
    corrected frame. auto_rows: {frame: [LabelRow]} of every frame; kept: {frame: the person's
    rows} of the corrected frames."""
    still = find_static_rows(list(auto_rows.values()), 0.7, STANDING_STILL)
    proposals = []
    for s in still:
        for frame, rows in kept.items():
            auto_there = [r for r in auto_rows.get(frame, []) if r.cls == s.cls]
            seen = auto_there and (overlap_with(np.array(s.corners()), _corners(auto_there), "iou") > iou).any()
            person = [r for r in rows if r.cls == s.cls]
            kept_by_person = person and (overlap_with(np.array(s.corners()), _corners(person), "iou") > iou).any()
            if seen and not kept_by_person:
                proposals.append(s)
                break
    return proposals
