"""YOLO label files: one `class cx cy w h` line per box, normalized to 0..1, six decimals.

This is the format Ultralytics trains on and LabelImg edits. Reading and writing round-trip
exactly: a file read and written again is the same bytes. Coordinates are formatted with a
fixed '%.6f', so the same boxes give the same bytes on every machine.
"""

import math
from pathlib import Path
from typing import NamedTuple

from .boxes import Box
from .errors import VisionError
from .files import write_bytes_if_changed, write_text_atomic


class LabelRow(NamedTuple):
    """One YOLO label: class index, box centre (cx, cy) and size (w, h) as fractions of the frame."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float

    def corners(self) -> tuple:
        """(x1, y1, x2, y2) in normalized units."""
        return (self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2)


def _clip01(v: float) -> float:
    return min(max(v, 0.0), 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0 (no '-0.000000' in files)


def _six(v: float) -> float:
    """The value a '%.6f' label field reads back as (so rows compare equal to their file)."""
    return float(f"{v:.6f}")


def box_to_row(box: Box, width: int, height: int) -> LabelRow:
    """A pixel box as a label row normalized by the frame size, rounded to 6 decimals."""
    x1, x2 = _clip01(box.x1 / width), _clip01(box.x2 / width)
    y1, y2 = _clip01(box.y1 / height), _clip01(box.y2 / height)
    return LabelRow(int(box.cls), _six((x1 + x2) / 2), _six((y1 + y2) / 2), _six(x2 - x1), _six(y2 - y1))


def row_to_box(row: LabelRow, width: int, height: int, conf: float = 1.0) -> Box:
    """A label row as a pixel box in a `width` x `height` frame (for drawing and matching)."""
    x1, y1, x2, y2 = row.corners()
    return Box(row.cls, conf, x1 * width, y1 * height, x2 * width, y2 * height)


def format_label_line(row) -> str:
    cls, cx, cy, w, h = row
    return f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def format_labels(rows) -> str:
    """The text of a label file: one line per row, each ending in '\\n'; '' for no rows."""
    return "".join(format_label_line(r) + "\n" for r in rows)


def parse_label_line(line: str, where: str) -> LabelRow:
    """One `class cx cy w h` line; `where` ('file:line') goes into the error message."""
    fields = line.split()
    if len(fields) != 5:
        raise VisionError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()!r}")
    try:
        cls = int(fields[0])
    except ValueError:
        raise VisionError(f"{where}: class must be a non-negative integer, got {fields[0]!r}") from None
    if cls < 0:
        raise VisionError(f"{where}: class must be a non-negative integer, got {fields[0]!r}")
    try:
        cx, cy, w, h = (float(f) for f in fields[1:])
    except ValueError:
        raise VisionError(f"{where}: coordinates must be numbers, got {' '.join(fields[1:])!r}") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
        raise VisionError(f"{where}: coordinates must be normalized to 0..1, got {' '.join(fields[1:])!r}")
    if w <= 0.0 or h <= 0.0:
        raise VisionError(f"{where}: box width and height must be > 0, got {fields[3]} {fields[4]}")
    return LabelRow(cls, cx, cy, w, h)


def parse_labels(text: str, source: str) -> list:
    """Rows of a label file's text; blank lines are skipped; `source` names the file in errors."""
    return [
        parse_label_line(line, f"{source}:{n}") for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def read_yolo_labels(path) -> list:
    """The rows of a YOLO label file; VisionError naming file and line if one is malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VisionError(f"cannot read label file {path}: {e.__class__.__name__}: {e}") from None
    return parse_labels(text, str(path))


def write_yolo_rows(path, rows) -> bool:
    """Write label rows atomically; skip the write if the file already has these bytes.

    Returns True if the file was written.
    """
    return write_bytes_if_changed(path, format_labels(rows).encode("ascii"))


def write_yolo_labels(path, boxes, width: int, height: int) -> bool:
    """Write pixel boxes of a `width` x `height` frame as a YOLO label file, in the given order.

    A box that is empty at label precision (width or height 0.000000, e.g. clipped away at the
    frame border) is left out: no reader or trainer accepts it.
    """
    rows = [box_to_row(b, width, height) for b in boxes]
    return write_yolo_rows(path, [r for r in rows if r.w > 0.0 and r.h > 0.0])


def write_classes(path, names) -> Path:
    """`classes.txt`: one class name per line, line i is class index i."""
    return write_text_atomic(path, "".join(f"{n}\n" for n in names))


def read_classes(path) -> list:
    """Class names from a classes.txt / coco.names file (blank lines dropped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VisionError(f"cannot read class names {path}: {e.__class__.__name__}: {e}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise VisionError(f"class names file {path} is empty; give one class name per line")
    return names
