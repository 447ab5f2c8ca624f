"""The same 8 short trials on a local fleet of 1 worker process, then of 2; prints both wall times
and ends with `ratio wall 2 workers/1 worker: X` (goal on 2 cores: X <= 0.55).

Each fleet is started here (workers.fleet.up) with its own temporary CVFLEET_DATA and free ports,
and stopped at the end. The 1-process baseline runs 1 BLAS thread, as each of the 2 processes
does, so the ratio measures process scaling alone; a third run times 1 process with a BLAS thread
per core, which is what `cvfleet up --concurrency 1` gives, when asked (--threaded-baseline).
Every trial records the BLAS threads threadpoolctl saw in its process; they are printed, to show the
pin held. Wall = `cvfleet sweep GRID` from start to exit (submission, every trial, the leaderboard);
span = first trial start to last trial end, from the trial records.

The machine may be shared: the fleets are all started first and the rounds interleaved (1, 2,
1, 2, ...), and each configuration's fastest round counts; every round is printed with the load.

    python benchmarks/bench_sweep.py [--epochs 6] [--train 4000] [--rounds 2] [--threaded-baseline]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from private_fleet import free_port

ROOT = Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 1
sys.path.insert(0, str(ROOT))

GRID = """# 8 short trials: 2 optimizers x 2 learning rates x 2 dense widths
data = "mnist5k"
train_limit = {train}
val_limit = 1000

[fixed]
epochs = {epochs}
conv = [8, 16]
batch_size = 64

[sweep]
optimizer = ["sgd", "adam"]
lr = [0.001, 0.01]
dense = [64, 128]
"""


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CVFLEET_THREADS_PER_PROCESS")


def cvfleet(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    if check and run.returncode:
        sys.exit(f"cvfleet {' '.join(args)} failed ({run.returncode}): {(run.stderr or run.stdout).strip()}")
    return run


class Fleet:
    """A local fleet of `concurrency` worker processes with `blas_threads` BLAS threads each, on its
    own temporary data root and free ports."""

    def __init__(self, label: str, concurrency: int, blas_threads: int):
        from workers import config, fleet

        self.label, self.concurrency = label, concurrency
        self.root = Path(tempfile.mkdtemp(prefix=f"cvfleet-bench-sweep-{concurrency}x{blas_threads}-"))
        self.env = {
            "CVFLEET_DATA": str(self.root / "data"),
            "CVFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "CVFLEET_FLOWER_PORT": str(free_port()),
        }
        os.environ.update(self.env)
        fleet.redis_password(config.load())
        self.cfg = config.load()
        default_env = fleet.worker_env
        # The fleet gives each process cores // concurrency threads; the 1-process, 1-thread baseline
        # (pure process scaling, docs/design.md's "N processes x 1 thread") overrides that for its worker only.
        fleet.worker_env = lambda c, *a: {**default_env(c, *a), **{v: str(blas_threads) for v in THREAD_VARS}}
        try:
            fleet.up(concurrency=concurrency, cfg=self.cfg)
        finally:
            fleet.worker_env = default_env

    def sweep(self, grid: Path) -> dict:
        """Run the grid, read every trial's record, delete the sweep (so the next round runs it all)."""
        import redis

        env = {**os.environ, **self.env}
        start = time.perf_counter()
        run = cvfleet(env, "sweep", str(grid), "--no-prune")
        wall = time.perf_counter() - start
        r = redis.Redis.from_url(self.cfg.redis_url, decode_responses=True)
        sweep_id = r.zrange("cvfleet:sweeps", 0, -1)[0]
        trials = [
            r.hgetall(f"cvfleet:sweep:{sweep_id}:trial:{t}")
            for t in r.zrange(f"cvfleet:sweep:{sweep_id}:trials", 0, -1)
        ]
        r.close()
        cvfleet(env, "sweep", "delete", sweep_id)
        states = sorted({t["state"] for t in trials})
        if states != ["done"]:
            sys.exit(f"{self.label}: trials ended {states}, expected all done:\n{run.stdout}")
        return {
            "wall": wall,
            "span": max(float(t["finished"]) for t in trials) - min(float(t["started"]) for t in trials),
            "trial_seconds": sum(float(t["seconds"]) for t in trials),
            "trials": len(trials),
            "blas": sorted({int(t["blas_threads"]) for t in trials}),
            "pids": len({t["pid"] for t in trials}),
            "leaderboard": run.stdout,
        }

    def down(self):
        from workers import fleet

        fleet.down(self.cfg)
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train", type=int, default=4000, help="training samples per trial (mnist5k has 4,000)")
    p.add_argument("--rounds", type=int, default=2, help="runs per fleet, interleaved; the fastest counts")
    p.add_argument(
        "--threaded-baseline",
        action="store_true",
        help="also time 1 process with a BLAS thread per core (minutes on a busy machine)",
    )
    args = p.parse_args()
    import numpy  # noqa: F401  (so threadpoolctl sees its BLAS)
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    print(
        f"cores {os.cpu_count()}, BLAS {blas[0]['internal_api']} {blas[0].get('version')} "
        f"kernel {blas[0].get('architecture')}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}, "
        f"load average {os.getloadavg()[0]:.2f}"
        if blas
        else f"cores {os.cpu_count()}, no BLAS found"
    )
    print(
        f"8 trials: mnist5k, {args.train} train / 1000 validation digits, {args.epochs} epochs, conv [8,16], "
        f"sgd|adam x lr 0.001|0.01 x dense 64|128, no pruning; {args.rounds} interleaved round(s), fastest kept"
    )
    specs = [("1 worker process x 1 BLAS thread", 1, 1), ("2 worker processes x 1 BLAS thread", 2, 1)]
    if args.threaded_baseline:
        specs.append((f"1 worker process x {CORES} BLAS threads (`cvfleet up --concurrency 1`)", 1, CORES))
    fleets = []
    try:
        for spec in specs:
            fleets.append(Fleet(*spec))
        with tempfile.TemporaryDirectory() as tmp:
            grid = Path(tmp) / "bench-grid.toml"
            grid.write_text(GRID.format(epochs=args.epochs, train=args.train))
            best: dict[str, dict] = {}
            for round_ in range(1, args.rounds + 1):
                for f in fleets:
                    res = f.sweep(grid)
                    print(
                        f"round {round_}, {f.label}: wall {res['wall']:.1f} s (trials span {res['span']:.1f} s, "
                        f"sum of trial epochs {res['trial_seconds']:.1f} s), {res['trials']} trials on "
                        f"{res['pids']} process(es), BLAS threads seen in trials {res['blas']}, "
                        f"load average {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    if f.label not in best or res["wall"] < best[f.label]["wall"]:
                        best[f.label] = res
    finally:
        for f in fleets:
            f.down()
    one, two = best[specs[0][0]], best[specs[1][0]]
    print(two["leaderboard"].rstrip())
    for label, res in best.items():
        print(f"{label}: wall {res['wall']:.1f} s")
    if args.threaded_baseline:
        print(f"ratio wall 2 workers/1 worker x {CORES} threads: {two['wall'] / best[specs[2][0]]['wall']:.2f}")
    print(
        f"trial time with 2 processes / with 1 (1.00 = each process had a core to itself; more = the cores were "
        f"shared with something else): {two['trial_seconds'] / one['trial_seconds']:.2f}"
    )
    print(f"ratio span 2 workers/1 worker: {two['span'] / one['span']:.2f}")
    print(f"ratio wall 2 workers/1 worker: {two['wall'] / one['wall']:.2f}")


if __name__ == "__main__":
    main()
