"""Motion-gated tiles (`--skip-still THRESHOLD`): a tile that barely changed since the last frame
in which it went through YOLO reuses that frame's boxes, so a fixed camera's empty corners cost
one forward, not one per frame.

Change is measured on what JPEG decoding gives for free: each frame read at 1/8 scale in grey
(`cv2.IMREAD_REDUCED_GRAYSCALE_8`, each pixel about the mean of an 8x8 block), the tile's part of
it compared with the same part of the tile's last *key* frame (the last frame it went through YOLO),
after a 3x3 box blur that averages sensor and JPEG noise away. The tile is still when the largest
blurred difference stays under THRESHOLD grey levels: the largest, not the mean, because a person
walking through a 416 px tile covers 2 % of it and would vanish in a mean. Comparing with the key
frame rather than the previous frame means slow drift (a shadow, a person inching along) adds up
until it crosses the threshold, and the tile runs again.

At 5 grey levels half the tiles of vtest.avi upscaled 3x skip YOLO, at recall 0.984 and precision
0.990 against the ungated labels (benchmarks/bench_motion.py; other thresholds and clips in
docs/design.md, "Measured history of vision/").

Pure planning: `plan_still` reads the frames and returns {frame: {tile: key frame}} for the tiles
to skip; the detect jobs leave them out and `reuse_still` copies the key frame's boxes in before
merging, so every later step sees a complete set of tiles.
"""

import json
from pathlib import Path

import cv2
import numpy as np

from .errors import VisionError
from .files import write_text_atomic
from .frames import IMAGES_DIR
from .tiling import Tile

STILL_NAME = "still_tiles.json"
SCALE = 8  # IMREAD_REDUCED_GRAYSCALE_8


def _reduced(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if image is None:
        raise VisionError(f"cannot read frame image {path}; re-extract the frames")
    return cv2.blur(image.astype(np.float32), (3, 3))


def _crop(image: np.ndarray, tile: Tile) -> np.ndarray:
    x1, y1 = tile.x // SCALE, tile.y // SCALE
    x2, y2 = max(x1 + 1, -(-(tile.x + tile.w) // SCALE)), max(y1 + 1, -(-(tile.y + tile.h) // SCALE))
    return image[y1:y2, x1:x2]


def check_threshold(threshold) -> None:
    """VisionError unless `threshold` is a grey-level difference in (0, 255)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 255:
        raise VisionError(f"--skip-still is a grey-level difference in (0, 255), e.g. 8; got {threshold!r}")


class StillPlanner:
    """`plan_still` one frame at a time, in frame order (a streamed extraction plans each frame as
    it lands): `add(name)` returns {tile key: key frame name} of that frame's still tiles."""

    def __init__(self, video_dir, tiles, threshold: float):
        check_threshold(threshold)
        self.video_dir, self.threshold = Path(video_dir), threshold
        self.tiles = [Tile(*t) for t in tiles]
        self.keys = {}  # tile -> (key frame name, reduced crop)

    def add(self, name: str) -> dict:
        image = _reduced(self.video_dir / IMAGES_DIR / f"{name}.jpg")
        still = {}
        for t in self.tiles:
            crop = _crop(image, t)
            key = self.keys.get(t)
            if key is not None and key[1].shape == crop.shape and float(np.abs(crop - key[1]).max()) < self.threshold:
                still[tile_key(t)] = key[0]
            else:
                self.keys[t] = (name, crop)
        return still


def plan_still(video_dir, frames, tiles, threshold: float) -> dict:
    """{frame name: {tile as "x,y,w,h": key frame name}} of the tiles that may reuse their key
    frame's boxes; a frame's first look at a tile (and every tile of the first frame) is a key."""
    planner = StillPlanner(video_dir, tiles, threshold)
    return {name: still for name, still in ((n, planner.add(n)) for n in frames) if still}


def tile_key(tile) -> str:
    return ",".join(str(int(v)) for v in tile)


def gated_jobs(jobs, still: dict) -> list:
    """The [frame name, tile] jobs that go through YOLO: all but the still ones."""
    return [j for j in jobs if tile_key(j[1]) not in still.get(j[0], {})]


def reuse_still(per_frame: dict, still: dict) -> dict:
    """{frame: [(Tile, [Box])]} with each still tile given its key frame's boxes, tiles in order."""
    out = {name: list(tiles) for name, tiles in per_frame.items()}
    for name, reused in still.items():
        for key, source in reused.items():
            boxes = next((b for t, b in per_frame.get(source, []) if tile_key(t) == key), None)
            if boxes is None:
                raise VisionError(f"still tile {key} of frame {name} has no boxes in key frame {source}")
            out.setdefault(name, []).append((Tile(*map(int, key.split(","))), list(boxes)))
    return {name: sorted(tiles, key=lambda e: e[0]) for name, tiles in out.items()}


def write_still(video_dir, still: dict) -> None:
    write_text_atomic(Path(video_dir) / STILL_NAME, json.dumps(still, sort_keys=True) + "\n")


def read_still(video_dir) -> dict:
    try:
        return json.loads((Path(video_dir) / STILL_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise VisionError(
            f"cannot read {Path(video_dir) / STILL_NAME}: {e.__class__.__name__}; annotate again"
        ) from None
