"""Motion-gated tiles (`--skip-still`) on a fixed camera: how many tiles skip YOLO, and what it costs
against the ungated labels of the same clip.

The clip: vtest.avi (a fixed camera, people walking) upscaled 3x to 2304x1728, every 5th source
frame, tiled at 1:1 as a native high-resolution fixed camera would be: 42 tiles of 416 px plus the
full-frame pass. (`cvfleet annotate` reads this clip's content scale, 3, and cuts it into 6 tiles of
1248 px instead: vision/content_scale.py. The 1:1 tiling keeps what this benchmark measures.)
Every tile of every frame goes through YOLO once (the ungated run); each threshold then plans
the still tiles (vision.motion.plan_still on the extracted JPEGs), gives them their key frame's
boxes, and merges as `cvfleet annotate` does. Scores are one-to-one (same class, IoU >= 0.5) against
the ungated merged labels. Ends with one `motion gating` line per threshold.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from vision import pipeline
from vision.detector import get_detector
from vision.merge import merge_tiles
from vision.motion import plan_still, reuse_still, tile_key
from vision.scoring import Score, score_frame
from vision.settings import AnnotateSettings, ModelSpec
from workers import asset_cache


def upscaled_clip(path: Path, frames: int, every: int = 5, factor: int = 3) -> Path:
    cap = cv2.VideoCapture(str(asset_cache.ensure("vtest.avi")))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    out = None
    i = written = 0
    while written < frames:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            big = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
            if out is None:
                out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps / every, big.shape[1::-1])
            out.write(big)
            written += 1
        i += 1
    out.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50, help="frames of the clip")
    ap.add_argument("--thresholds", default="3,4,5,6,8,12", help="grey levels, comma-separated")
    args = ap.parse_args()
    settings = AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    with tempfile.TemporaryDirectory() as tmp:
        video = upscaled_clip(Path(tmp) / "fixed-camera-3x.avi", args.frames)
        video_dir = Path(tmp) / "out"
        meta = pipeline.prepare_video(video, video_dir, settings)
        tiles = pipeline.frame_tiles(meta["width"], meta["height"], settings)  # 1:1, see the docstring
        print(
            f"machine: {os.cpu_count()} cores; {len(meta['frames'])} frames {meta['width']}x{meta['height']}, "
            f"{len(tiles)} tiles per frame (full-frame pass included), runtime {settings.runtime}"
        )
        start = time.perf_counter()
        per_frame = pipeline.gather_detections(
            [pipeline.detect_jobs(video_dir, pipeline.tile_jobs(meta, tiles), get_detector(settings.detector_spec()))]
        )
        print(f"ungated: {len(tiles) * len(meta['frames'])} forwards in {time.perf_counter() - start:.0f} s")
        w, h = meta["width"], meta["height"]
        reference = {n: [b for b, _ in merge_tiles(per_frame[n], w, h)] for n in meta["frames"]}
        total = len(tiles) * len(meta["frames"])
        for threshold in (float(t) for t in args.thresholds.split(",")):
            t0 = time.perf_counter()
            still = plan_still(video_dir, meta["frames"], tiles, threshold)
            plan_s = time.perf_counter() - t0
            kept = {n: [(t, b) for t, b in per_frame[n] if tile_key(t) not in still.get(n, {})] for n in meta["frames"]}
            gated = reuse_still(kept, still)
            score = Score()
            for n in meta["frames"]:
                score += score_frame([b for b, _ in merge_tiles(gated[n], w, h)], reference[n])
            skipped = sum(len(v) for v in still.values())
            print(
                f"motion gating {threshold:g}: skipped {skipped}/{total} tiles ({100 * skipped / total:.1f} %), "
                f"recall {score.recall:.3f} precision {score.precision:.3f} against ungated (plan {plan_s:.1f} s)"
            )


if __name__ == "__main__":
    main()
