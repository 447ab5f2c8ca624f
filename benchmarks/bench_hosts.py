"""Many hosts on one machine: the same clip annotated by 1, 2 (and 4) simulated hosts, each one
`cvfleet worker -Q detect -c 1` pinned to a core of its own, against one Redis on the head.

Hosts are Linux network namespaces from the suite's harness (tests/support/hosts.py): every byte
between a host and Redis crosses TCP/IP over a veth pair and a bridge. Storage is Redis (the
default): each host's view of the head's videos, output and data root is hidden under an empty
tmpfs, so frames reach it and its boxes leave it through Redis only; the model's files stay visible
at the head's path (tasks/annotate/stager.py). The bytes per tile printed here hold the frames.

Each host count runs in a fresh child process with a fresh lab and Redis (so the Redis counters and
its peak memory belong to that run alone): host k's worker on core k-1 (`taskset -c`), the head
(Redis, one `cvfleet worker -Q video -c 1`, the submitter) on the last core, which it shares with
the last host when hosts = cores. A host count needing more cores than the machine has is skipped.
Each worker's pool process has loaded the model before the clock starts (a smoke task answered).

Printed per host count: tiles/s, Redis bytes in/out and commands per tile (INFO stats before and
after, minus the idle fleet's rate measured just before), Redis's peak memory (used_memory_peak of
that run's Redis), and the CPU each worker and Redis used (cores, from /proc: on a loaded machine a
pinned host gets only part of its core, so tiles per detect CPU-second show the fleet's own loss);
then whether all runs' labels are byte-identical, what a 100-host fleet would ask of one Redis at
45 ms a tile, and last `ratio 2 hosts/1 host tiles/s: X` (goal >= 1.8 with one core per host; on 2
cores the head's video worker shares host 2's core).
Root only (network and mount namespaces); elsewhere it exits with one line saying why.

    sudo python benchmarks/bench_hosts.py [--every 2] [--max-frames 120] [--hosts 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TILE_SECONDS = 0.045  # the per-tile time the paper limit assumes
FLEET_HOSTS = 100
IDLE_SECONDS = 3.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=2, help="keep every N-th frame")
    ap.add_argument("--max-frames", type=int, default=120, help="frames of vtest.avi to read")
    ap.add_argument("--hosts", default="1,2,4", help="host counts to run, comma separated")
    ap.add_argument("--run", type=int, help=argparse.SUPPRESS)  # internal: one host count, in a child
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        return run_hosts(args.run, args.dir, args.every, args.max_frames)

    from support.hosts import unavailable

    reason = unavailable()
    if reason:
        sys.exit(f"bench_hosts: {reason}")
    cores = len(os.sched_getaffinity(0))
    counts = [int(n) for n in args.hosts.split(",")]
    print(header(cores, args))
    for n in [n for n in counts if n > cores]:
        print(f"{n} hosts skipped: this machine has {cores} cores, and each host gets one of its own")
    counts = [n for n in counts if n <= cores]

    root = Path(tempfile.mkdtemp(prefix="cvfleet-bench-hosts-"))
    runs = {}
    try:
        for n in counts:
            out = root / f"hosts{n}"
            child = [sys.executable, __file__, "--run", str(n), "--dir", str(out)]
            child += ["--every", str(args.every), "--max-frames", str(args.max_frames)]
            done = subprocess.run(child, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"bench_hosts: the {n}-host run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            runs[n] = json.loads((out / "result.json").read_text())
            print(run_line(n, runs[n]))
        labels = [labels_of(root / f"hosts{n}") for n in runs]
        print(f"labels identical: {all(x == labels[0] for x in labels) and bool(labels[0])}")
        print(paper_limit(runs[max(runs)], max(runs)))
        print(load_line())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if 1 in runs and 2 in runs:
        per_cpu = [r["tiles"] / (detect_cores(r) * r["seconds"]) for r in (runs[2], runs[1])]
        print(
            f"tiles per detect CPU-second 2 hosts/1 host: {per_cpu[0] / per_cpu[1]:.2f} (each host's speed on the CPU "
            "it got; tiles/s also follow the share of the cores other processes leave)"
        )
        print(f"ratio 2 hosts/1 host tiles/s: {rate(runs[2]) / rate(runs[1]):.2f}")


def header(cores: int, args) -> str:
    import cv2

    from vision.settings import AnnotateSettings

    s = AnnotateSettings(every=args.every, max_frames=args.max_frames)
    head = cores - 1
    return "\n".join([
        f"machine: {cores} cores, OpenCV {cv2.__version__}; {load_line()}",
        f"clip: vtest.avi, --every {args.every} --max-frames {args.max_frames}, tile {s.tile} overlap {s.overlap}, "
        f"yolov3-tiny {s.model.input_size} on {s.runtime}",
        "storage: redis (the default): the head's videos, output and data root hidden on every host; frames and "
        "boxes go through Redis, the model's files are read at the head's path",
        f"pinning: host k's `cvfleet worker -Q detect -c 1` on core k-1 (taskset -c); the head (Redis, "
        f"`cvfleet worker -Q video -c 1`, the submitter) on core {head}, shared with host {head + 1} when it runs",
    ])  # fmt: skip


def run_line(n: int, r: dict) -> str:
    busy, idle = busy_per_tile(r), r["idle"]
    return (
        f"hosts {n}: {r['tiles']} tiles in {r['seconds']:.1f} s = {rate(r):.2f} tiles/s ({r['chunks']} detect tasks "
        f"of {r['tiles'] / r['chunks']:.1f} tiles: a task holds {r['chunk_seconds']:.0f} s of work at the speed the "
        f"video's worker measured)\n"
        f"  Redis per tile: {busy['in']:.0f} B in + {busy['out']:.0f} B out, {busy['commands']:.1f} commands "
        f"(idle fleet subtracted: {idle['commands'] / idle['seconds']:.0f} commands/s, "
        f"{(idle['in'] + idle['out']) / idle['seconds'] / 1024:.1f} KiB/s); peak memory {r['peak'] / 2**20:.2f} MiB "
        f"({r['rest'] / 2**20:.2f} at rest); the frames' JPEGs {r['jpeg_per_tile'] / 1024:.1f} KiB a tile\n"
        f"  CPU during the run, in cores: {', '.join(f'{what} {c:.2f}' for what, c in r['cpu'].items())}; "
        f"tiles per detect CPU-second: {r['tiles'] / (detect_cores(r) * r['seconds']):.2f}"
    )


def detect_cores(r: dict) -> float:
    """Cores the hosts' detect workers used during the run, all together."""
    return sum(c for what, c in r["cpu"].items() if what.startswith("host"))


def rate(r: dict) -> float:
    return r["tiles"] / r["seconds"]


def busy_per_tile(r: dict) -> dict:
    """Redis traffic per tile during the run, less what the idle fleet sends in the same time."""
    idle = r["idle"]
    return {
        k: (r["delta"][k] - idle[k] / idle["seconds"] * r["seconds"]) / r["tiles"] for k in ("in", "out", "commands")
    }


def paper_limit(r: dict, n: int) -> str:
    """What FLEET_HOSTS hosts at TILE_SECONDS a tile would ask of one Redis, from run `r` of `n` hosts:
    two bounds, as a detect task's traffic grows with its tiles (their jobs travel in the message) or
    not (acks, results, records), and a task holds chunk_seconds of work, so more tiles at 45 ms."""
    busy, idle = busy_per_tile(r), r["idle"]
    tiles_s = FLEET_HOSTS / TILE_SECONDS
    idle_s = {k: idle[k] / idle["seconds"] / (n + 1) * (FLEET_HOSTS + 1) for k in busy}  # n detect + 1 video
    per_task = r["chunk_seconds"] / TILE_SECONDS
    lines = [
        f"limit on paper: {FLEET_HOSTS} hosts at {TILE_SECONDS * 1000:.0f} ms a tile = {tiles_s:.0f} tiles/s through "
        f"one Redis (the {n}-host run's traffic, plus {FLEET_HOSTS + 1} workers' idle traffic):"
    ]
    for what, scale in (
        (f"traffic per tile as measured ({r['tiles'] / r['chunks']:.1f} tiles a task)", 1.0),
        (
            f"traffic per task, {per_task:.0f} tiles a task at {TILE_SECONDS * 1000:.0f} ms",
            r["tiles"] / r["chunks"] / per_task,
        ),
    ):
        need = {k: tiles_s * busy[k] * scale + idle_s[k] for k in busy}
        lines.append(
            f"  {what}: {need['commands']:.0f} commands/s, {(need['in'] + need['out']) / 2**20:.2f} MiB/s "
            f"({need['in'] / 2**20:.2f} in + {need['out'] / 2**20:.2f} out)"
        )
    frames = tiles_s * r["jpeg_per_tile"] / 2**20
    lines.append(f"  of which frames: {frames:.0f} MiB/s in and at least as much out (each frame read once)")
    return "\n".join(lines)


def labels_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "head" / "out" / "vtest" / "labels").glob("*.txt"))}


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; other agents share this machine)"


def run_hosts(n: int, out: Path, every: int, max_frames: int) -> None:
    """One host count in a fresh lab; writes OUT/result.json. The head is pinned to the last core
    before Redis starts, so Redis, the video worker and this submitter inherit it."""
    from support.hosts import CVFLEET, Worker, lab

    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})
    with lab(out, hosts=n) as net:
        os.environ.update(net.env)  # before the tasks' Celery app reads the Redis URL
        from workers import asset_cache, config

        cache = str(config.load().cache)  # the model, read at the head's path
        detect = []
        for k, host in enumerate(net.hosts):
            name = f"detect@{host.name}"
            cmd = ["taskset", "-c", str(cores[k]), *CVFLEET, "worker", "-Q", "detect", "-c", "1", "-n", name]
            hide = [p for p in net.hidden if str(p) != cache]
            proc = host.popen(cmd, hide=hide, env={"CVFLEET_CACHE": cache}, log=host.dir / "worker-detect.log")
            detect.append(Worker(name, proc))
        video = net.worker("video")
        net.wait_workers([*detect, video])
        warm(net, n)

        from tasks import batch_store
        from tasks.annotate.client import submit
        from tasks.store import client, key
        from vision.settings import AnnotateSettings, ModelSpec

        clip = net.head / "videos" / "vtest.avi"
        clip.parent.mkdir(parents=True)
        shutil.copy(asset_cache.ensure("vtest.avi"), clip)
        model = ModelSpec(**asset_cache.yolov3_tiny_files())
        settings = AnnotateSettings(every=every, max_frames=max_frames, model=model)
        redis = client()
        rest = redis.info("memory")["used_memory"]
        s0, t0 = stats(redis), time.perf_counter()
        time.sleep(IDLE_SECONDS)
        idle = {**diff(stats(redis), s0), "seconds": time.perf_counter() - t0}

        groups = {**{f"host {k + 1}": w.proc.pid for k, w in enumerate(detect)}, "head's video worker": video.proc.pid}
        groups["Redis"] = next(p.pid for p in psutil.Process().children(recursive=True) if "redis" in p.name())
        c0 = {what: cpu_seconds(pid) for what, pid in groups.items()}
        s0, t0 = stats(redis), time.perf_counter()
        batch_id = submit([clip], net.head / "out", settings)
        finished = net.head / "out" / "vtest" / "annotation.json"  # written last; watched on disk, not in Redis
        polls = 0
        while not finished.exists():
            time.sleep(0.05)
            polls += 1
            if polls % 100 == 0 and batch_store.progress(batch_id).finished:
                break
        while not batch_store.progress(batch_id).finished:  # the record turns done just after the file
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        delta = diff(stats(redis), s0)
        cpu = {what: (cpu_seconds(pid) - c0[what]) / seconds for what, pid in groups.items()}
        peak = redis.info("memory")["used_memory_peak"]
        v = batch_store.progress(batch_id).videos[0]
        chunks = redis.hget(key("batch", batch_id, "video", 0), "chunks")
        if v.state != "done":
            sys.exit(f"the video ended {v.state}: {v.error}")
        frames = list((net.head / "out" / "vtest" / "images").glob("*.jpg"))
        jpeg_per_tile = sum(f.stat().st_size for f in frames) / v.summary["tiles"]
    result = {"tiles": v.summary["tiles"], "seconds": seconds, "delta": delta, "idle": idle, "peak": peak, "cpu": cpu}
    result.update(rest=rest, jpeg_per_tile=jpeg_per_tile, chunks=int(chunks))
    result.update(chunk_seconds=config.load().chunk_seconds)
    (out / "result.json").write_text(json.dumps(result))


def warm(net, n: int, timeout: float = 300) -> None:
    """Until each host's pool process has answered a task on the detect queue (its start-up, model
    load included, is behind it)."""
    app = net.app()
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < n:
        if time.monotonic() > deadline:
            sys.exit(f"only {len(pids)} of {n} hosts' detect workers answered in {timeout:.0f} s")
        sent = [app.send_task("cvfleet.smoke.models", queue="detect") for _ in range(2 * n)]
        pids |= {r.get(timeout=timeout)["pid"] for r in sent}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far, in seconds."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def stats(redis) -> dict:
    info = redis.info("stats")
    return {"in": info["total_net_input_bytes"], "out": info["total_net_output_bytes"],
            "commands": info["total_commands_processed"]}  # fmt: skip


def diff(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


if __name__ == "__main__":
    main()
