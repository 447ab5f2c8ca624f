"""Static objects: boxes a person drew once that hold in every frame (a fixed camera's scene).

`static_labels.txt` is a YOLO label file (drawn in LabelImg on any one frame). Propagation
appends its boxes to every frame's label file unless the frame already has a same-class box in
that place, so running it twice changes nothing. Suggestions go the other way: boxes the
detector finds in the same place in nearly every frame are proposed as static objects.
"""

import re
from pathlib import Path

import numpy as np

from .boxes import overlap_with
from .errors import VisionError
from .files import write_text_atomic
from .labels import LabelRow, format_labels, parse_labels, read_yolo_labels, write_yolo_rows

FRAME_LABEL_NAME = re.compile(r"^\d+\.txt$")
DUPLICATE_IOU = 0.5
SUGGESTIONS_NAME = "static_suggestions.txt"


def read_static_labels(path) -> list:
    """Rows of a static labels file; VisionError (file, line, reason) if unreadable or malformed.

    Coordinates are rounded to the 6 decimals of a label file, so a propagated row reads back
    equal to its static row (which is how `suggest_static` can leave them out).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VisionError(f"static labels file not found: {path}; check the --static path") from None
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


def propagate_static(labels_dir, static_rows) -> int:
    """Append the static boxes to every frame's label file, skipping duplicates.

    Files are rewritten atomically and only when they change, so a second run writes nothing.
    Returns the number of boxes appended over all frames.
    """
    added = 0
    for path in frame_label_files(labels_dir):
        rows = read_yolo_labels(path)
        new_rows = add_static_rows(rows, static_rows)
        if len(new_rows) != len(rows):
            added += len(new_rows) - len(rows)
            write_yolo_rows(path, new_rows)
    return added


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


def suggest_static(labels_dir, iou: float = 0.7, min_fraction: float = 0.9, out_path=None, ignore=()) -> list:
    """Static-object suggestions from the per-frame labels in `labels_dir`.

    Rows equal to one in `ignore` (the static rows already propagated) are left out, so the
    answer is the same before and after `propagate_static`. If `out_path` is given, the
    suggestions are written there as a YOLO label file (`static_suggestions.txt` beside
    `labels/` by convention), ready to copy into `static_labels.txt`.
    """
    ignored = set(ignore)
    frames_rows = [[r for r in read_yolo_labels(p) if r not in ignored] for p in frame_label_files(labels_dir)]
    rows = find_static_rows(frames_rows, iou, min_fraction)
    if out_path is not None:
        write_text_atomic(out_path, format_labels(rows))
    return rows
