"""detections.jsonl: the raw material of every label, kept beside labels/.

One JSON object per frame, in frame order:

    {"frame": "000001",
     "boxes": [{"cls": 0, "conf": 0.91, "xyxy": [x1, y1, x2, y2], "tiles": [[x, y, w, h], ...]}, ...],
     "raw":   [{"tile": [x, y, w, h], "boxes": [[cls, conf, x1, y1, x2, y2], ...]}, ...]}

`boxes` are the merged boxes the label file holds, each with its confidence and the tiles (or the
full-frame pass, a tile that is the whole frame) that saw it, and boxes filled in over a gap of a
track (`"filled": true`, no tiles; vision/temporal.py); `raw` is every tile's own output in
frame pixels, before merging. Pixel coordinates, confidences in 0..1. With it, review, re-merging
with other options and filling over time never need YOLO again.
"""

import json
from pathlib import Path

from .boxes import Box
from .errors import VisionError
from .files import write_text_atomic
from .tiling import Tile

DETECTIONS_NAME = "detections.jsonl"


def frame_record(name: str, per_tile, merged, filled=()) -> dict:
    """The record of one frame. per_tile: [(Tile, [Box])]; merged: [(Box, [index into per_tile])];
    filled: Boxes filled in over a gap of a track (vision/temporal.py), seen by no tile."""
    tiles = [Tile(*t).to_json() for t, _ in per_tile]
    return {
        "frame": name,
        "boxes": [
            {"cls": b.cls, "conf": b.conf, "xyxy": [b.x1, b.y1, b.x2, b.y2], "tiles": [tiles[i] for i in sources]}
            for b, sources in merged
        ]
        + [
            {"cls": b.cls, "conf": b.conf, "xyxy": [b.x1, b.y1, b.x2, b.y2], "tiles": [], "filled": True}
            for b in filled
        ],
        "raw": [{"tile": tiles[i], "boxes": [b.to_json() for b in boxes]} for i, (_, boxes) in enumerate(per_tile)],
    }


def raw_detections(record: dict) -> list:
    """A record's per-tile detections: [(Tile, [Box]), ...]."""
    return [(Tile.from_json(r["tile"]), [Box.from_json(b) for b in r["boxes"]]) for r in record["raw"]]


def merged_boxes(record: dict) -> list:
    """A record's merged boxes: [(Box, [Tile, ...]), ...]."""
    return [(Box(b["cls"], b["conf"], *b["xyxy"]), [Tile.from_json(t) for t in b["tiles"]]) for b in record["boxes"]]


def write_detections(path, records) -> None:
    """Write the records (one per frame, in frame order) atomically."""
    write_text_atomic(Path(path), "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


def read_detections(path) -> dict:
    """{frame name: record}; VisionError naming the file and line of anything malformed."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise VisionError(f"{path} not found: annotate the video first") from None
    records = {}
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            raw_detections(record)
            merged_boxes(record)
            records[record["frame"]] = record
        except (ValueError, KeyError, TypeError) as e:
            raise VisionError(
                f"{path}:{number}: not a detections record ({e.__class__.__name__}); re-annotate"
            ) from None
    return records
