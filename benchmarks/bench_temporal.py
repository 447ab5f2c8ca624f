"""Does filling over time help? Recall and precision of the labels without and with `--temporal`,
on consecutive frames, against a reference known by construction (as in bench_accuracy.py):

* crowded: each 2304x1728 frame is a 3x3 grid of vtest.avi running at nine different times, all
  nine advancing --step source frames per clip frame. Reference: the detector on each 768x576
  piece at its native size (1:1), boxes moved into the grid.
  Run twice: on the clean frames (nothing to fill: what fill costs), and with every 4th frame
  motion-blurred (a camera shake: objects the detector misses between two sightings).

The labels are the defaults (tiles + full-frame pass, tile-aware merge), then vision.temporal's
`over_time` with off, fill, clean and both; fill's gap is --gap frames. One-to-one scoring (same
class, IoU >= 0.5). Ends with the `temporal fill` lines: the recall and precision change of fill.
"""

import argparse
import os
import time

import cv2
import numpy as np
from bench_accuracy import CONF, NativeDetector, as_annotated, grid_clip, per_tile

from vision.detector import Detector
from vision.merge import merge_tiles
from vision.scoring import Score, score_frame
from vision.settings import AnnotateSettings, ModelSpec
from vision.temporal import TEMPORAL_MODES, over_time
from vision.tiling import tile_grid
from workers import asset_cache

BLUR = 25  # pixels of horizontal motion blur


def label_clip(frames, settings, detector) -> list:
    h, w = frames[0].shape[:2]
    tiles = tile_grid(w, h, settings.tile, settings.tile_h, settings.overlap, full_frame=True)
    return [
        [b for b, _ in merge_tiles(per_tile(detector, as_annotated(f, settings.jpeg_quality), tiles), w, h)]
        for f in frames
    ]


def score_modes(labels, references, gap) -> dict:
    scores = {}
    for mode in TEMPORAL_MODES:
        kept, filled = over_time(labels, mode, gap)
        s = Score()
        for boxes, k, f, ref in zip(labels, kept, filled, references):
            s += score_frame([boxes[i] for i in k] + f, ref)
        scores[mode] = s
        added = sum(len(f) for f in filled)
        dropped = sum(len(b) - len(k) for b, k in zip(labels, kept))
        print(
            f"  {mode:6s} recall {s.recall:.3f}  precision {s.precision:.3f}  "
            f"(+{added} filled, -{dropped} dropped; {s.reference} reference boxes)"
        )
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16, help="consecutive clip frames per clip")
    ap.add_argument("--step", type=int, default=2, help="source frames between clip frames (--every)")
    ap.add_argument("--gap", type=int, default=2, help="fill gap, frames")
    args = ap.parse_args()
    settings = AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files()), conf=CONF)
    detector = Detector(**settings.detector_spec())
    native = NativeDetector(**settings.detector_spec())
    print(
        f"machine: {os.cpu_count()} cores, OpenCV {cv2.__version__}; yolov3-tiny, conf {CONF}, tile {settings.tile}; "
        f"{args.frames} consecutive frames per clip, every {args.step} source frames, fill gap {args.gap}"
    )
    start = time.perf_counter()
    crowded, crowded_ref = grid_clip([[c * 85 + f * args.step for c in range(9)] for f in range(args.frames)], native)
    print("crowded (2304x1728, a 3x3 grid of vtest), clean frames: nothing to fill, what fill costs")
    clean = score_modes(label_clip(crowded, settings, detector), crowded_ref, args.gap)
    kernel = np.full((1, BLUR), 1.0 / BLUR, np.float32)
    blurred = [cv2.filter2D(im, -1, kernel) if i % 4 == 2 else im for i, im in enumerate(crowded)]
    print(f"the same, every 4th frame motion-blurred ({BLUR} px): objects missed between two sightings")
    blur = score_modes(label_clip(blurred, settings, detector), crowded_ref, args.gap)
    print(f"({time.perf_counter() - start:.0f} s)")
    for name, s in (("blurred", blur), ("clean", clean)):
        print(
            f"temporal fill {name}: recall {s['off'].recall:.3f} -> {s['fill'].recall:.3f} "
            f"({100 * (s['fill'].recall - s['off'].recall):+.1f} pp), precision {s['off'].precision:.3f} -> "
            f"{s['fill'].precision:.3f} ({100 * (s['fill'].precision - s['off'].precision):+.1f} pp)"
        )


if __name__ == "__main__":
    main()
