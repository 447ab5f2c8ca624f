"""Fairness across batches: a small batch submitted behind a big one, through the local fleet.

A batch of about 20,000 tiles (vtest.avi cut into 160-px tiles, 31 per frame with the full-frame
pass), then, 5 s later, a batch of one video of 10 frames (70 tiles). Each batch keeps a few
chunks per worker process in flight, so the small batch waits for a chunk or two, not for the big
one. The big batch is cancelled once the small one is done (`batch cancel`), and the fleet stopped.
Ends with `small batch behind big: first label X s, done Y s` (goal: done <= 15 s on 2 processes).

    python benchmarks/bench_fair.py [--tiles 20000] [--delay 5] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path

from private_fleet import private_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=20_000, help="tiles of the big batch")
    ap.add_argument("--delay", type=float, default=5.0, help="seconds between the two submissions")
    ap.add_argument("--concurrency", type=int, default=2, help="fleet worker processes")
    args = ap.parse_args()

    root = private_fleet("cvfleet-bench-fair-")
    from tasks import annotate, batch_store
    from vision.settings import AnnotateSettings, ModelSpec
    from vision.tiling import tile_grid
    from workers import asset_cache, fleet

    video = root / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    model = ModelSpec(**asset_cache.yolov3_tiny_files())
    per_frame = len(tile_grid(768, 576, 160, None, 0.2, True))
    frames = math.ceil(args.tiles / per_frame)
    big_settings = AnnotateSettings(tile=160, max_frames=frames, model=model)
    small_settings = AnnotateSettings(every=10, max_frames=10, model=model)
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; fleet of {args.concurrency} processes; "
        f"big: vtest.avi {frames} frames x {per_frame} tiles (160 px) = {frames * per_frame} tiles; "
        f"small: 10 frames x 7 tiles, {args.delay:.0f} s later"
    )
    try:
        fleet.up(args.concurrency)
        big = annotate.submit([video], root / "big", big_settings)
        time.sleep(args.delay)
        t0 = time.perf_counter()
        small = annotate.submit([video], root / "small", small_settings)
        labels = root / "small" / "vtest" / "labels"
        first, seen = None, {}
        while not (info := batch_store.progress(small)).finished:
            now = time.perf_counter() - t0
            v = info.videos[0]
            seen.setdefault(v.state, now)
            if v.state == "detecting" and v.tiles_done:
                seen.setdefault("first tiles", now)
            if first is None and labels.is_dir() and any(labels.glob("*.txt")):
                first = now
            time.sleep(0.05)
        done = time.perf_counter() - t0
        first = first if first is not None else done
        big_video = batch_store.progress(big).videos[0]
        small_video = info.videos[0]
        annotate.cancel(big)
    finally:
        fleet.down()
    assert small_video.state == "done", small_video
    print(
        f"small batch: {small_video.get('chunks')} detect task(s) at {small_video.get('ms_per_tile')} ms/tile; "
        f"big batch meanwhile: {big_video.state}, {big_video.tiles_done}/{big_video.tiles} tiles, "
        f"{big_video.get('chunks')} tasks at {big_video.get('ms_per_tile')} ms/tile (then cancelled)"
    )
    print("small batch timeline: " + ", ".join(f"{state} {t:.1f} s" for state, t in seen.items()))
    work = small_video.tiles * (small_video.ms_per_tile or 0) / 1000
    print(
        f"small batch's own work at the measured speed: {work:.1f} s of one process; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    shutil.rmtree(root, ignore_errors=True)
    print(f"small batch behind big: first label {first:.1f} s, done {done:.1f} s")


if __name__ == "__main__":
    main()
