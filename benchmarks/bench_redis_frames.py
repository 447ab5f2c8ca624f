"""How much Redis holds while frames travel through it (CVFLEET_STORAGE=redis): its peak memory for
a short and a long video on the same fleet, so it shows whether the bound is the fleet's size or the
video's length.

    python benchmarks/bench_redis_frames.py [--short 100] [--long 795] [--concurrency 2]

One private local fleet (`cvfleet up`); vtest.avi (768x576, 795 frames, 7 forwards a frame) capped
at --short then --long frames, every frame. A thread samples Redis `used_memory` every 0.2 s; the
peak over the idle fleet's memory is printed for each run, with the largest number of frames Redis
held at once (`cvfleet:frame:*` keys) and the bytes of the frames moved per tile.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench_load import PeakSampler, memory_sampler, mib
from private_fleet import private_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frames_held(client) -> int:
    """Frame keys Redis holds now."""
    return sum(1 for k in client.scan_iter("cvfleet:frame:*", count=1000) if not k.endswith(":holds"))


def annotate(frames: int, out: Path, video: Path, client) -> tuple[float, int, int, int]:
    """(seconds, tiles, peak bytes over idle, peak frames held) of one run."""
    from tasks import annotate as annotate_tasks
    from tasks import batch_store
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache

    settings = AnnotateSettings(max_frames=frames, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    base = int(client.info("memory")["used_memory"])
    memory, held = memory_sampler(client), PeakSampler(lambda: frames_held(client))
    memory.start()
    held.start()
    start = time.perf_counter()
    batch_id = annotate_tasks.submit([video], out, settings)
    while not (info := batch_store.progress(batch_id)).finished:
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    memory.stop.set()
    held.stop.set()
    memory.join()
    held.join()
    v = info.videos[0]
    assert v.state == "done", v
    return seconds, v.tiles, max(memory.peak - base, 0), held.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=int, default=100, help="frames of the short run")
    ap.add_argument("--long", type=int, default=795, help="frames of the long run (vtest has 795)")
    ap.add_argument("--concurrency", type=int, default=2, help="worker processes of the fleet")
    args = ap.parse_args()
    root = private_fleet("cvfleet-bench-frames-")
    from workers import asset_cache, config

    cvfleet = [sys.executable, "-m", "workers.cli"]
    subprocess.run([*cvfleet, "up", "--concurrency", str(args.concurrency)], check=True, capture_output=True)
    try:
        from tasks.store import client

        video = asset_cache.ensure("vtest.avi")
        r = client()
        storage = config.load().storage
        print(f"fleet: {args.concurrency} worker processes, storage {storage}; clip vtest.avi, every frame")
        peaks = {}
        for frames in (args.short, args.long):
            seconds, tiles, peak, held = annotate(frames, root / f"out-{frames}", video, r)
            peaks[frames] = peak
            print(
                f"{frames} frames, {tiles} tiles in {seconds:.1f} s: Redis peak {mib(peak)} over idle, "
                f"at most {held} frames held at once"
            )
        print(f"ratio Redis peak {args.long}/{args.short} frames: {peaks[args.long] / max(peaks[args.short], 1):.2f}")
    finally:
        subprocess.run([*cvfleet, "down"], capture_output=True)


if __name__ == "__main__":
    main()
