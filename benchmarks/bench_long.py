"""A long video, fleet vs bare: does extraction overlap detection, and how soon is the first label?

The clip: vtest.avi (795 frames, 768x576, a fixed camera) played `--repeat` times back to back
(default: as many times as make the bare loop last at least `--bare-seconds`, 180, as estimated
from a probe), written once as an MPEG-4 file. Both sides annotate all of it with the defaults
(416 px tiles, the full-frame pass, onnxruntime), from empty output directories:

* bare: one process, `vision.pipeline.annotate_video` (decode and write every frame, then YOLO on
  every tile, then the labels), with the runtime's best intra-op thread count for this machine,
  measured here on the clip's tiles;
* fleet: `cvfleet up` with one process per core, the batch submitted through Redis; frames stream
  into detection (chunks are queued as frames land) and label files appear as frames finish.

Printed: total time of each, the time from submission to the first label file, the fleet's idle
core-seconds while the video was extracting (cores x extraction time - CPU time of the worker's
processes meanwhile), whether the labels are identical, then the motion-gating lines
(benchmarks/bench_motion.py) and the ms per tile of each runtime (benchmarks/bench_runtime.py),
each run here. Ends with `ratio fleet/bare long video: X` (bare time / fleet time; goal >= 1.0).

    python benchmarks/bench_long.py [--repeat N] [--bare-seconds 180] [--concurrency N] [--no-extras]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bare_loop import annotate_bare, bare_detector, first_frame_tiles, probe_line
from private_fleet import private_fleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent


def long_clip(path: Path, repeat: int) -> tuple[Path, int]:
    """vtest.avi `repeat` times back to back as one MPEG-4 file; (path, frames)."""
    import cv2

    from workers import asset_cache

    source = asset_cache.ensure("vtest.avi")
    out, frames = None, 0
    for _ in range(repeat):
        cap = cv2.VideoCapture(str(source))
        fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if out is None:
                out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
            out.write(frame)
            frames += 1
        cap.release()
    out.release()
    return path, frames


class FirstFile(threading.Thread):
    """Notes when the first file matching `pattern` appears under `folder` (polled every 50 ms)."""

    def __init__(self, folder: Path, pattern: str):
        super().__init__(daemon=True)
        self.folder, self.pattern, self.at, self.stop = folder, pattern, None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.at is None:
            if self.folder.is_dir() and next(self.folder.glob(self.pattern), None) is not None:
                self.at = time.perf_counter()
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def last_lines(script: str, args: list, prefixes: tuple) -> list:
    run = subprocess.run(
        [sys.executable, str(HERE / script), *args], capture_output=True, text=True, env={**os.environ}, check=False
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith(prefixes)]
    return lines or [f"{script} failed: {run.stderr.strip().splitlines()[-1:]}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=None, help="times vtest.avi is played (default: from --bare-seconds)")
    ap.add_argument("--bare-seconds", type=float, default=180.0, help="how long the bare loop should last at least")
    ap.add_argument("--concurrency", type=int, default=os.cpu_count(), help="fleet worker processes")
    ap.add_argument("--no-extras", action="store_true", help="skip the motion-gating and runtime lines")
    args = ap.parse_args()

    root = private_fleet("cvfleet-bench-long-")
    import cv2

    from tasks import annotate, batch_store
    from vision.settings import AnnotateSettings, ModelSpec
    from workers import asset_cache, config, fleet

    settings = AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    probe_meta, tiles = first_frame_tiles(asset_cache.ensure("vtest.avi"), root / "probe", settings)
    detector, threads, timings = bare_detector(settings, tiles)
    per_frame = timings[threads] * len(tiles) / 1000 + 0.015  # + decode, JPEG encode and write
    repeat = args.repeat or max(1, math.ceil(args.bare_seconds / (per_frame * len(probe_meta["frames"]))))
    video, frames = long_clip(root / "vtest-long.mp4", repeat)
    print(
        f"machine: {os.cpu_count()} cores, OpenCV {cv2.__version__}; clip: vtest.avi x{repeat} = {frames} frames "
        f"768x576, {len(tiles)} forwards a frame (tile {settings.tile}, overlap {settings.overlap}, full frame), "
        f"yolov3-tiny {settings.model.input_size} on {settings.runtime}"
    )
    print(probe_line(timings))

    first_bare = FirstFile(root / "bare" / video.stem / "labels", "*.txt")
    first_bare.start()
    t0 = time.perf_counter()
    summary = annotate_bare(video, root / "bare", settings, detector)
    bare_s = time.perf_counter() - t0
    first_bare.stop.set()
    bare_first = (first_bare.at or time.perf_counter()) - t0
    print(
        f"bare:  {summary['frames']} frames, {summary['tiles']} tiles in {bare_s:.1f} s; first label after "
        f"{bare_first:.1f} s (1 process, {threads} {settings.runtime} thread(s))"
    )

    try:
        fleet.up(args.concurrency)
        worker_pid = fleet.read_state(config.load())["pids"]["worker"]
        out = root / "fleet"
        first = FirstFile(out / video.stem / "labels", "*.txt")
        first.start()
        cpu0 = cpu_seconds(worker_pid)
        t0 = time.perf_counter()
        batch_id = annotate.submit([video], out, settings)
        extracted_at = cpu_at = None
        while not (info := batch_store.progress(batch_id)).finished:
            if extracted_at is None and (out / video.stem / "video.json").is_file():
                extracted_at, cpu_at = time.perf_counter(), cpu_seconds(worker_pid)
            time.sleep(0.05)
        fleet_s = time.perf_counter() - t0
        if extracted_at is None:
            extracted_at, cpu_at = time.perf_counter(), cpu_seconds(worker_pid)
    finally:
        fleet.down()
    first.stop.set()
    v = info.videos[0]
    assert v.state == "done", v
    extract_s = extracted_at - t0
    idle = args.concurrency * extract_s - (cpu_at - cpu0)
    print(
        f"fleet: {v.summary['frames']} frames, {v.summary['tiles']} tiles in {fleet_s:.1f} s; first label after "
        f"{(first.at or extracted_at) - t0:.1f} s ({args.concurrency} worker processes x 1 {settings.runtime} thread)"
    )
    print(
        f"fleet extraction: {extract_s:.1f} s, idle core-seconds meanwhile: {max(idle, 0.0):.1f} "
        f"of {args.concurrency * extract_s:.1f}"
    )
    bare_labels = root / "bare" / video.stem / "labels"
    same = all((out / video.stem / "labels" / p.name).read_bytes() == p.read_bytes() for p in bare_labels.glob("*.txt"))
    print(f"labels identical: {same} ({len(list(bare_labels.glob('*.txt')))} files)")
    shutil.rmtree(root, ignore_errors=True)
    if not args.no_extras:
        for line in last_lines("bench_motion.py", ["--thresholds", "5"], ("motion gating",)):
            print(line)
        for line in last_lines("bench_runtime.py", [], ("ms per tile",)):
            print(line)
    print(f"ratio fleet/bare long video: {bare_s / fleet_s:.2f}")


if __name__ == "__main__":
    main()
