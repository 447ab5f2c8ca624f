"""Fleet vs bare: the same clip and settings annotated through the local fleet and in one process.

The bare side is a single-process loop over the same `vision/` functions (`annotate_video`)
with the runtime's best thread count (intra-op threads on onnxruntime, OpenCV's on opencv), chosen
here by measuring 1..cores threads on the clip's tiles (benchmarks/bare_loop.py, as bench_long).
Both sides start from empty output directories and include frame extraction and labelling.
Prints tiles/s for both and ends with `ratio fleet/bare tiles/s: X` (goal >= 0.95 on 2 cores).
Run it once per `--runtime` (opencv, onnxruntime) to compare the runtimes on the fleet.

    python benchmarks/bench_annotate.py [--frames 150] [--every 2] [--concurrency N] [--runtime R]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from bare_loop import annotate_bare, bare_detector, first_frame_tiles, probe_line
from private_fleet import private_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames of vtest.avi to annotate")
    ap.add_argument("--every", type=int, default=2, help="keep every N-th frame")
    ap.add_argument("--concurrency", type=int, default=os.cpu_count(), help="fleet worker processes")
    ap.add_argument("--runtime", choices=("opencv", "onnxruntime"), default="onnxruntime", help="YOLO runtime")
    args = ap.parse_args()

    root = private_fleet("cvfleet-bench-annotate-")
    import cv2

    from tasks import annotate, batch_store
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache, fleet

    video = root / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    settings = AnnotateSettings(
        every=args.every,
        max_frames=args.frames,
        runtime=args.runtime,
        model=ModelSpec(**asset_cache.yolov3_tiny_files()),
    )
    print(
        f"machine: {os.cpu_count()} cores, OpenCV {cv2.__version__}; clip: vtest.avi, {args.frames} frames "
        f"every {args.every}, tile {settings.tile} overlap {settings.overlap}, yolov3-tiny {settings.model.input_size} "
        f"on {args.runtime}"
    )

    # the runtime's best thread count for the bare loop, measured on this clip's tiles
    detector, threads, timings = bare_detector(settings, first_frame_tiles(video, root / "probe", settings)[1])
    print(probe_line(timings))

    t0 = time.perf_counter()
    summary = annotate_bare(video, root / "bare", settings, detector)
    bare_s = time.perf_counter() - t0
    n_tiles = summary["tiles"]
    bare = n_tiles / bare_s
    print(
        f"bare:  {n_tiles} tiles in {bare_s:.1f} s = {bare:.1f} tiles/s  "
        f"(1 process, {threads} {args.runtime} thread(s))"
    )

    try:
        fleet.up(args.concurrency)
        t0 = time.perf_counter()
        batch_id = annotate.submit([video], root / "fleet", settings)
        while not (info := batch_store.progress(batch_id)).finished:
            time.sleep(0.05)
        fleet_s = time.perf_counter() - t0
    finally:
        fleet.down()
    v = info.videos[0]
    assert v.state == "done", v
    fleet_rate = v.summary["tiles"] / fleet_s
    print(
        f"fleet: {v.summary['tiles']} tiles in {fleet_s:.1f} s = {fleet_rate:.1f} tiles/s  "
        f"({args.concurrency} worker processes x 1 {args.runtime} thread, through Redis)"
    )
    same = all(
        (root / "fleet" / "vtest" / "labels" / p.name).read_bytes() == p.read_bytes()
        for p in (root / "bare" / "vtest" / "labels").glob("*.txt")
    )
    print(f"labels identical: {same}")
    shutil.rmtree(root, ignore_errors=True)
    print(f"ratio fleet/bare tiles/s: {fleet_rate / bare:.2f}")


if __name__ == "__main__":
    main()
