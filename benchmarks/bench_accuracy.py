"""How good are the labels? Recall and precision of the tile merge against a reference, on three clips
where the reference is known by construction, two built from vtest.avi (people walking, 768x576):

* crowded: each 2304x1728 frame is a 3x3 grid of vtest frames taken at different times. Reference:
  the same detector run on each 768x576 piece at its native size (net input 768x576, 1:1, no
  scaling), boxes moved into the grid. The tiles (416 px, 1:1 too) see the same pixels at the same
  scale, so what they miss or duplicate is the merge's doing, not the scale's.
* large: vtest upscaled 3x (2304x1728, linear), so people are larger than the tile overlap (their
  boxes are 97-130 px tall, median 117: smaller than a tile, but blurred by the upscale).
  Reference: the detector on the native frame at 1:1, boxes scaled 3x.
* native-large: a 2304x1728 mosaic of sharp photos from package registries (people, a cat, a cup,
  a cartoon rabbit; benchmarks/native_large.py), each at its own size, content scale 1, panned a
  few pixels per frame: objects larger than a tile at native resolution. Reference: the detector at
  1:1 on each photo alone (padded with black to the net's stride), boxes moved into the mosaic.

Each frame goes through the detector once per tile (and once whole, the full-frame pass), from a
JPEG at the default quality as `cvfleet annotate` reads it; the merges compared are then pure
functions of those same detections:

  defaults              what annotate does: tiles sized by the clip's content scale (found from 3 of
                        its frames, vision/content_scale.py) on the net's stride lattice, the
                        full-frame pass, the tile-aware merge (vision.pipeline, vision.merge)
  1:1, on the lattice   the same with tiles of --tile pixels whatever the content scale
  1:1, off the lattice  and with those tiles spread evenly, off the lattice (as before)
  1:1, NMS over IoS     the old default: every 1:1 tile box pooled, NMS over IoS 0.5
  1:1, NMS over IoU     every 1:1 tile box pooled, NMS over IoU 0.5
  full frame only       the whole frame through the net once

Scores are one-to-one (same class, IoU >= 0.5; vision.scoring); "dup" counts same-class pairs of
output boxes one inside the other (IoS > 0.8). Before the clips, "phase noise" scores the reference
detector against itself run on the same pieces shifted by 13 px: how far two looks at the same
pixels at another phase disagree (vision/tiling.py says why the tiles sit on the stride lattice).
Each clip's first line gives its forwards per frame. Ends with the three `accuracy defaults` lines.
`--cfg FILE` runs the bundled weights with another cfg (benchmarks/gold/README.md says why).
"""

import argparse
import os
import sys
import time

import cv2
import numpy as np
from merge_baselines import merge_boxes
from native_large import MosaicError, native_large_clip

from vision.boxes import Box
from vision.content_scale import SAMPLE_FRAMES
from vision.detector import Detector
from vision.merge import merge_tiles, to_frame
from vision.pipeline import content_scale, frame_tiles
from vision.scoring import Score, score_frame
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile, tile_grid
from workers import asset_cache

CONF = 0.3


class NativeDetector(Detector):
    """The detector with the net input at the image's own size (multiples of 32): 1:1, no scaling."""

    def forward(self, image):
        h, w = image.shape[:2]
        self.net.setInput(cv2.dnn.blobFromImage(image, 1 / 255.0, (w, h), swapRB=True, crop=False))
        return self.net.forward(self.output_names)


def native_boxes(native: Detector, image: np.ndarray) -> list:
    """The native detector's boxes on `image` padded with black to the net's stride (32), clipped back."""
    h, w = image.shape[:2]
    padded = cv2.copyMakeBorder(image, 0, -h % 32, 0, -w % 32, cv2.BORDER_CONSTANT, value=0)
    boxes = native.detect(padded)
    clipped = [Box(b.cls, b.conf, b.x1, b.y1, min(b.x2, w), min(b.y2, h)) for b in boxes if b.x1 < w and b.y1 < h]
    return [b for b in clipped if b.x2 > b.x1 and b.y2 > b.y1]


def vtest_frames(indices) -> dict:
    cap = cv2.VideoCapture(str(asset_cache.ensure("vtest.avi")))
    want, frames, i = set(indices), {}, 0
    while len(frames) < len(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            frames[i] = frame
        i += 1
    cap.release()
    return frames


def as_annotated(frame: np.ndarray, quality: int) -> np.ndarray:
    """The frame as the pipeline reads it back: through a JPEG."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def per_tile(detector: Detector, image: np.ndarray, tiles) -> list:
    return [(t, to_frame(detector.detect(image[t.y : t.y + t.h, t.x : t.x + t.w]), t)) for t in tiles]


def scale(boxes, k: float, dx: float = 0.0, dy: float = 0.0) -> list:
    return [Box(b.cls, b.conf, b.x1 * k + dx, b.y1 * k + dy, b.x2 * k + dx, b.y2 * k + dy) for b in boxes]


def grid_clip(picks, native: Detector) -> tuple[list, list]:
    """(frames, references): each frame a 3x3 grid of the vtest frames of one entry of `picks` (nine
    source frame indices), its reference the native detector's boxes of each piece moved into the grid."""
    source = vtest_frames([i for p in picks for i in p])
    frames, references = [], []
    for p in picks:
        cells = [source[i] for i in p]
        frames.append(np.vstack([np.hstack(cells[r * 3 : r * 3 + 3]) for r in range(3)]))
        ch, cw = cells[0].shape[:2]
        references.append(
            [b for c, cell in enumerate(cells) for b in scale(native.detect(cell), 1.0, (c % 3) * cw, (c // 3) * ch)]
        )
    return frames, references


def run_clip(name: str, frames, references, settings: AnnotateSettings, detector: Detector) -> Score:
    h, w = frames[0].shape[:2]
    scale = content_scale(frames[:: max(1, len(frames) // SAMPLE_FRAMES)][:SAMPLE_FRAMES])
    passes = {  # tiles of each way of cutting the frame compared
        "defaults": frame_tiles(w, h, settings, scale),
        "1:1, on the lattice": frame_tiles(w, h, settings),
        "1:1, off the lattice": tile_grid(w, h, settings.tile, settings.tile_h, settings.overlap, full_frame=True),
    }
    whole = Tile(0, 0, w, h)
    keys = (*passes, "1:1, NMS over IoS", "1:1, NMS over IoU", "full frame only")
    scores = {k: Score() for k in keys}
    for frame, reference in zip(frames, references):
        image = as_annotated(frame, settings.jpeg_quality)
        found = {}  # tiles -> detections: each way of cutting goes through the net once
        outputs = {}
        for key, tiles in passes.items():
            found.setdefault(tuple(tiles), per_tile(detector, image, tiles))
            outputs[key] = [b for b, _ in merge_tiles(found[tuple(tiles)], w, h, settings.merge, settings.metric)]
        one_to_one = found[tuple(passes["1:1, on the lattice"])]
        tile_boxes = [b for t, boxes in one_to_one if t != whole for b in boxes]
        outputs["1:1, NMS over IoS"] = merge_boxes(tile_boxes, "nms", "ios", 0.5)
        outputs["1:1, NMS over IoU"] = merge_boxes(tile_boxes, "nms", "iou", 0.5)
        outputs["full frame only"] = [b for t, boxes in one_to_one if t == whole for b in boxes]
        for key, boxes in outputs.items():
            scores[key] += score_frame(boxes, reference)
    counts = ", ".join(f"{key} {len(tiles)}" for key, tiles in passes.items())
    print(
        f"{name}: {len(frames)} frames {w}x{h}, content scale {scale:g}; forwards per frame (full-frame pass "
        f"included): {counts}; {scores['defaults'].reference} reference boxes"
    )
    for key, s in scores.items():
        print(f"  {key:22s} recall {s.recall:.3f}  precision {s.precision:.3f}  dup {s.duplicates}")
    return scores["defaults"]


def phase_noise(native: Detector, cells, shift: int = 13) -> Score:
    """The reference detector against itself on the same cells shifted by `shift` px (edge pixels
    repeated on the left and top, the far edge cut), boxes near the cut edges left out of both."""
    total = Score()
    for cell in cells:
        h, w = cell.shape[:2]
        shifted = cv2.copyMakeBorder(cell, shift, 0, shift, 0, cv2.BORDER_REPLICATE)[:h, :w]
        got, want = scale(native.detect(shifted), 1.0, -shift, -shift), native.detect(cell)
        total += score_frame(*([b for b in boxes if b.x2 < w - 40 and b.y2 < h - 40] for boxes in (got, want)))
    return total


def main() -> None:
    try:
        run()
    except MosaicError as e:
        sys.exit(f"bench_accuracy: {e}")


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6, help="frames per clip")
    ap.add_argument("--cfg", default=None, help="another Darknet cfg for the bundled yolov3-tiny weights")
    args = ap.parse_args()
    files = asset_cache.yolov3_tiny_files()
    model = ModelSpec(**{**files, "cfg": args.cfg or files["cfg"]})
    settings = AnnotateSettings(model=model, conf=CONF)
    detector = Detector(**settings.detector_spec())
    # the reference runs each image at its own size: only cv2.dnn's net takes any size (the ONNX graph is fixed)
    native = NativeDetector(**{**settings.detector_spec(), "runtime": "opencv"})
    print(
        f"machine: {os.cpu_count()} cores, OpenCV {cv2.__version__}; yolov3-tiny ({model.cfg}), conf {CONF}, "
        f"tile {settings.tile}, overlap {settings.overlap}, "
        f"merge {settings.merge} over {settings.metric} {settings.merge_threshold}"
    )
    start = time.perf_counter()

    # crowded: a 3x3 grid of frames far apart in time, a different set per clip frame
    n = args.frames
    picks = [[(f * 9 + c) * 795 // (9 * n) for c in range(9)] for f in range(n)]
    noise = phase_noise(native, list(vtest_frames([i for p in picks for i in p]).values()))
    print(
        "phase noise (the reference detector against itself shifted 13 px): "
        f"recall {noise.recall:.3f} precision {noise.precision:.3f}"
    )
    crowded, crowded_ref = grid_clip(picks, native)
    crowd = run_clip("crowded", crowded, crowded_ref, settings, detector)

    # large: vtest upscaled 3x, reference from the native frames
    natives = vtest_frames([f * 795 // n + 40 for f in range(n)])
    large = [cv2.resize(f, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR) for f in natives.values()]
    large_ref = [scale(native.detect(f), 3.0) for f in natives.values()]
    big = run_clip("large", large, large_ref, settings, detector)

    # native-large: sharp photos at their own size, reference from each photo alone at 1:1
    mosaic, mosaic_ref = native_large_clip(n, lambda image: native_boxes(native, image))
    sharp = run_clip("native-large", mosaic, mosaic_ref, settings, detector)

    print(f"({time.perf_counter() - start:.0f} s)")
    print(f"accuracy defaults crowded: recall {crowd.recall:.3f} precision {crowd.precision:.3f}")
    print(f"accuracy defaults large: recall {big.recall:.3f} precision {big.precision:.3f}")
    print(f"accuracy defaults native-large: recall {sharp.recall:.3f} precision {sharp.precision:.3f}")


if __name__ == "__main__":
    main()
