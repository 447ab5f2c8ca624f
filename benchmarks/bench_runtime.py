"""OpenCV's dnn vs onnxruntime on the same YOLO model, same tiles, same process, one thread each.

The tiles are the pipeline's 416 px tiles of real vtest.avi frames; each forward is timed whole
(blob, net, decode, NMS: `Detector.detect`), in alternating rounds so that a neighbour's load on a
shared machine falls on both runtimes alike; the median round counts. Before timing, the boxes of
both runtimes are matched one to one (same class, IoU > 0.9) and the worst IoU and confidence
difference printed. Ends with `ms per tile: opencv X, onnxruntime Y, ratio Z` (onnxruntime/opencv;
below 1 means onnxruntime is faster).

    python benchmarks/bench_runtime.py [--frames 4] [--rounds 7] [--input-size 416]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4, help="vtest.avi frames to cut into tiles")
    ap.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per runtime")
    ap.add_argument("--input-size", type=int, default=416, help="net input in pixels")
    args = ap.parse_args()

    import cv2
    import numpy as np
    import onnxruntime
    from scipy.optimize import linear_sum_assignment

    from vision.boxes import overlap_with
    from vision.detector import Detector
    from vision.tiling import tile_grid
    from workers import asset_cache

    cv2.setNumThreads(1)  # onnxruntime's session runs one intra-op thread: the fleet's setting for both
    model = {**asset_cache.yolov3_tiny_files(), "input_size": args.input_size}
    cap = cv2.VideoCapture(str(asset_cache.ensure("vtest.avi")))
    frames = []
    for i in range(args.frames * 100):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 100 == 0:
            frames.append(frame)
    tiles = [f[t.y : t.y + t.h, t.x : t.x + t.w] for f in frames for t in tile_grid(768, 576, 416, overlap=0.2)]

    t0 = time.perf_counter()
    detectors = {"opencv": Detector(**model), "onnxruntime": Detector(**model, runtime="onnxruntime")}
    print(
        f"machine: {os.cpu_count()} cores; OpenCV {cv2.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"yolov3-tiny at {args.input_size}, {len(tiles)} tiles of {len(frames)} vtest.avi frames, 1 thread each "
        f"(both loaded in {time.perf_counter() - t0:.1f} s, the ONNX conversion cached beside the weights)"
    )

    boxes, worst_iou, worst_conf = 0, 1.0, 0.0
    for tile in tiles:
        a, b = (d.detect(tile) for d in detectors.values())
        assert len(a) == len(b), "the runtimes found different numbers of boxes"
        for cls in {x.cls for x in a}:
            pa = [x for x in a if x.cls == cls]
            pb = [x for x in b if x.cls == cls]
            corners = np.array([[x.x1, x.y1, x.x2, x.y2] for x in pb])
            ious = np.stack([overlap_with(np.array([x.x1, x.y1, x.x2, x.y2]), corners) for x in pa])
            rows, cols = linear_sum_assignment(ious, maximize=True)
            assert len(rows) == len(pa) == len(pb)
            boxes += len(rows)
            worst_iou = min(worst_iou, float(ious[rows, cols].min()))
            worst_conf = max(worst_conf, max(abs(pa[i].conf - pb[j].conf) for i, j in zip(rows, cols)))
    print(f"same boxes: {boxes} matched one to one, min IoU {worst_iou:.6f}, max conf difference {worst_conf:.1e}")

    rounds = {name: [] for name in detectors}
    for _ in range(args.rounds):
        for name, detector in detectors.items():
            t0 = time.perf_counter()
            for tile in tiles:
                detector.detect(tile)
            rounds[name].append((time.perf_counter() - t0) / len(tiles) * 1000)
    for name, ms in rounds.items():
        print(f"{name}: ms per tile by round: {', '.join(f'{m:.1f}' for m in ms)}")
    cv, ort = (statistics.median(rounds[n]) for n in ("opencv", "onnxruntime"))
    print(f"ms per tile: opencv {cv:.1f}, onnxruntime {ort:.1f}, ratio {ort / cv:.2f}")


if __name__ == "__main__":
    main()
