"""Grid + median stopping against ASHA over the same space, with the same epoch budget, on mnist5k.

Both run on one local fleet of 2 worker processes x 1 BLAS thread (started here with its own
temporary data root, stopped at the end), the grid first, then ASHA:

* grid: a 6 x 3 x 2 grid over the space (lr log-spaced from 0.001 to 0.3, every batch size, two
  dense widths), 9 epochs each, median stopping (the default scheduler);
* ASHA: 36 points drawn from the space (seeded), eta 3, rungs at epochs 1 and 3, 9 epochs at most.

The budget is about 108 epochs for each: the median rule stops most of the grid's 36 trials early,
and ASHA spends about 3 epochs per trial at this size (more than the 1 + 2/3 + 6/9 of a full rung
ladder, since the first trials to reach a rung go on easily); both print the epochs they trained.

For each it prints the best validation accuracy (the top of the leaderboard: the final accuracy of
a trial that ran all its epochs, whose weights the sweep saved) and the wall time from submission
to the end of that trial's last epoch, then the epochs trained and the whole sweep's wall time, the
time each took to finish a trial at least as good as the lower of the two bests, and ends with
`ratio ASHA/grid time to best: X` (goal X <= 0.5, best accuracies within 0.3 pp).

    python benchmarks/bench_search.py [--epochs 9] [--samples 36] [--seed 0] [--show]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import Fleet, cvfleet  # noqa: E402  (the fleet a benchmark starts and stops)

DATA = 'data = "mnist5k"\nholdout = 0.2\nsplit_seed = 0\n'  # 4,000 train / 1,000 validation digits
FIXED = "[fixed]\nepochs = {epochs}\nconv = [8, 16]\nseed = 0\n"
GRID = (
    DATA + FIXED + "[sweep]\nlr = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]\nbatch_size = [32, 64, 128]\ndense = [64, 192]\n"
)  # the grid's points lie inside the space below
SPACE = (
    DATA
    + FIXED
    + """[space]
lr = {{ dist = "loguniform", low = 0.001, high = 0.5 }}
batch_size = {{ dist = "choice", values = [32, 64, 128] }}
dense = {{ dist = "int", low = 32, high = 256 }}
[scheduler]
name = "asha"
eta = 3
min_epochs = 1
"""
)


def expected_epochs(epochs: int, eta: int, r: int = 1) -> float:
    """ASHA's epochs per trial if exactly 1/eta of each rung went on."""
    from tasks.schedulers import asha_rungs

    stops = [*asha_rungs(r, eta, epochs), epochs]
    return stops[0] + sum((b - a) / eta ** (i + 1) for i, (a, b) in enumerate(zip(stops, stops[1:])))


def run_sweep(fleet: Fleet, grid: Path, *args: str) -> dict:
    import redis

    env = {**os.environ, **fleet.env}
    start = time.time()
    run = cvfleet(env, "sweep", str(grid), *args)
    wall = time.time() - start
    r = redis.Redis.from_url(fleet.cfg.redis_url, decode_responses=True)
    sweep_id = r.zrevrange("cvfleet:sweeps", 0, 0)[0]
    trials = {}
    for tid in r.zrange(f"cvfleet:sweep:{sweep_id}:trials", 0, -1):
        t = r.hgetall(f"cvfleet:sweep:{sweep_id}:trial:{tid}")
        t["history"] = [json.loads(e) for e in r.lrange(f"cvfleet:sweep:{sweep_id}:trial:{tid}:epochs", 0, -1)]
        trials[tid] = t
    best_id, best = r.zrevrange(f"cvfleet:sweep:{sweep_id}:leaderboard", 0, 0, withscores=True)[0]
    r.close()
    reached = trials[best_id]["history"][-1]["time"] - start
    states = [t["state"] for t in trials.values()]
    finished = sorted(
        (t["history"][-1]["time"] - start, float(t["val_accuracy"])) for t in trials.values() if t["state"] == "done"
    )
    return {
        "finished": finished,
        "best": best,
        "best_point": json.loads(trials[best_id]["point"]),
        "time_to_best": reached,
        "wall": wall,
        "trials": len(trials),
        "epochs": sum(len(t["history"]) for t in trials.values()),
        "done": states.count("done"),
        "pruned": states.count("pruned"),
        "leaderboard": run.stdout,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=9, help="epochs of a trial that is never stopped")
    p.add_argument("--samples", type=int, default=None, help="ASHA's samples (default: what the budget buys)")
    p.add_argument("--seed", type=int, default=0, help="seed of ASHA's samples")
    p.add_argument("--show", action="store_true", help="print both leaderboards")
    args = p.parse_args()
    samples = args.samples or 36
    print(
        f"mnist5k 4000 train / 1000 validation, conv [8,16]; grid 36 points x {args.epochs} epochs + median "
        f"stopping; ASHA eta 3, {samples} samples (a full rung ladder costs "
        f"{expected_epochs(args.epochs, 3):.2f} epochs per trial), seed {args.seed}; "
        f"2 worker processes x 1 BLAS thread; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    fleet = Fleet("2 worker processes x 1 BLAS thread", 2, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            grid_file, space_file = Path(tmp) / "grid.toml", Path(tmp) / "space.toml"
            grid_file.write_text(GRID.format(epochs=args.epochs))
            space_file.write_text(SPACE.format(epochs=args.epochs))
            grid = run_sweep(fleet, grid_file)
            asha = run_sweep(fleet, space_file, "--samples", str(samples), "--seed", str(args.seed))
    finally:
        fleet.down()
    for name, res in (("grid+median", grid), ("ASHA", asha)):
        if args.show:
            print(res["leaderboard"].rstrip())
        print(
            f"{name:11s}  best val_acc {res['best']:.4f}  time to best {res['time_to_best']:.1f} s  "
            f"({res['trials']} trials: {res['done']} done, {res['pruned']} stopped; {res['epochs']} epochs; "
            f"sweep wall {res['wall']:.1f} s)  best point {json.dumps(res['best_point'], separators=(',', ':'))}"
        )
    print(f"difference in best val_acc, ASHA - grid: {100 * (asha['best'] - grid['best']):+.1f} pp")
    target = min(grid["best"], asha["best"])
    first = [next(t for t, acc in res["finished"] if acc >= target) for res in (grid, asha)]
    print(
        f"time to a finished trial at val_acc >= {target:.4f}: grid {first[0]:.1f} s, ASHA {first[1]:.1f} s "
        f"(ratio {first[1] / first[0]:.2f})"
    )
    print(f"ratio ASHA/grid time to best: {asha['time_to_best'] / grid['time_to_best']:.2f}")


if __name__ == "__main__":
    main()
