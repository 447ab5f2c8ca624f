"""Load: an annotation batch of >= 20,000 tile tasks and a sweep of 64 trials on the local fleet,
with Redis memory sampled throughout. Prints tasks/s, peak and final Redis memory, and the keys
left behind (results expire; chord bookkeeping must be cleaned up).

    python benchmarks/bench_load.py [--concurrency N] [--skip-sweep]

To keep it a test of the fleet and not of YOLO, tiles are small (160 px, net input 128 px), one
tile per task: vtest.avi's 795 frames x 30 tiles = 23,850 detect tasks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from private_fleet import private_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class PeakSampler(threading.Thread):
    """Samples `measure()` every 0.2 s; `peak` is the largest value seen (a failed sample is skipped)."""

    def __init__(self, measure):
        super().__init__(daemon=True)
        self.measure, self.peak, self.stop = measure, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.measure())
            except Exception:
                pass
            time.sleep(0.2)


def memory_sampler(client) -> PeakSampler:
    """Samples Redis `used_memory`."""
    return PeakSampler(lambda: int(client.info("memory")["used_memory"]))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def key_census(client) -> dict:
    census = {}
    for k in client.scan_iter(count=1000):
        k = k if isinstance(k, str) else k.decode()
        group = (
            "celery-task-meta-*"
            if k.startswith("celery-task-meta-")
            else "chord bookkeeping"
            if k.startswith(("celery-taskset-meta-", "chord-unlock"))
            else k.split(":")[0] + ":" + k.split(":")[1] + ":*"
            if k.startswith("cvfleet:") and ":" in k[8:]
            else k
        )
        census[group] = census.get(group, 0) + 1
    return census


def memory_breakdown(client) -> str:
    """Where Redis' memory is: data set vs overhead, and the largest keys."""
    info = client.info("memory")
    sizes = sorted(((client.memory_usage(k) or 0, k) for k in client.scan_iter(count=1000)), reverse=True)[:3]
    largest = ", ".join(f"{k} {n / 1024:.0f} KiB" for n, k in sizes)
    return (
        f"dataset {mib(int(info['used_memory_dataset']))}, overhead {mib(int(info['used_memory_overhead']))}, "
        f"lua {mib(int(info.get('used_memory_lua', 0)))}; largest keys: {largest}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=os.cpu_count())
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--max-frames", type=int, default=None, help="fewer frames for a quick look (default: all 795)")
    args = ap.parse_args()
    root = private_fleet("cvfleet-bench-load-")
    from tasks import annotate, batch_store
    from tasks.store import client
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache, fleet

    video = root / "vtest.avi"
    shutil.copy(asset_cache.ensure("vtest.avi"), video)
    settings = AnnotateSettings(
        tile=160,
        overlap=0.2,
        max_frames=args.max_frames,
        model=ModelSpec(**asset_cache.yolov3_tiny_files(), input_size=128),
    )
    try:
        fleet.up(args.concurrency)
        r = client()
        base = int(r.info("memory")["used_memory"])
        sampler = memory_sampler(r)
        sampler.start()
        t0 = time.perf_counter()
        batch_id = annotate.submit([video], root / "out", settings, tiles_per_task=1)
        while not (info := batch_store.progress(batch_id)).finished:
            time.sleep(1)
        wall = time.perf_counter() - t0
        v = info.videos[0]
        assert v.state == "done", v
        time.sleep(1)
        after = int(r.info("memory")["used_memory"])
        print(
            f"annotation: {v.tiles} detect tasks (+{2} per video) in {wall:.1f} s = "
            f"{v.tiles / wall:.0f} tasks/s, "
            f"{args.concurrency} worker processes"
        )
        print(f"annotation: Redis used_memory base {mib(base)}, peak {mib(sampler.peak)}, after {mib(after)}")
        print(f"annotation: keys left: {key_census(r)}")
        print(f"annotation: after: {memory_breakdown(r)}")
        if not args.skip_sweep:
            sweep_load(root, r, sampler, args.concurrency)
        print(f"Redis used_memory_peak (server's own): {mib(int(r.info('memory')['used_memory_peak']))}")
        sampler.stop.set()
    finally:
        fleet.down()
        shutil.rmtree(root, ignore_errors=True)


def sweep_load(root: Path, r, sampler, concurrency: int) -> None:
    from tasks import sweep_submit

    grid = root / "grid64.toml"
    grid.write_text(
        'data = "mnist5k"\ntrain_limit = 1000\nval_limit = 500\n\n[fixed]\nepochs = 2\n'
        "conv = [4, 8]\ndense = 32\n\n[sweep]\nlr = [0.01, 0.02, 0.05, 0.1]\n"
        "batch_size = [16, 32, 64, 128]\nmomentum = [0.0, 0.5, 0.9, 0.95]\n"
    )
    sampler.peak = 0
    g, trials, data = sweep_submit.plan(grid)
    t0 = time.perf_counter()
    sweep_id, queued, _ = sweep_submit.submit(g, trials, data, prune=False)
    from tasks import sweep_store

    while not (info := sweep_store.progress(sweep_id))["finished"]:
        time.sleep(1)
    wall = time.perf_counter() - t0
    print(f"sweep: {len(trials)} trials in {wall:.1f} s = {len(trials) / wall:.2f} trials/s; states {info['counts']}")
    print(f"sweep: Redis used_memory peak {mib(sampler.peak)}, after {mib(int(r.info('memory')['used_memory']))}")
    print(f"sweep: keys left: {key_census(r)}")


if __name__ == "__main__":
    main()
