"""bench_search's question asked of many more orders than the fleet can afford to run: grid +
median stopping against ASHA, replayed on learning curves recorded once (issue 15, item 4).

bench_search runs 7 paired repetitions, and its per-repetition ratio spreads from 0.2 to past 3,
so a median of 7 moves a lot between runs. This script measures that spread instead:

1. Record (on a local fleet, as bench_search: 2 worker processes x 1 BLAS thread, real Redis and
   Celery): for each seed, every point of the benchmark's grid and --draws points of its space,
   each trained all its epochs with no early stopping; every epoch's validation accuracy and
   seconds are kept in --curves (a file that exists is read instead, so step 2 can be re-run).
2. Replay (in this process, no fleet): --replays paired replays, seeds in turn. Each shuffles the
   grid's points and the space's draws, then plays both arms on 2 workers in simulated time: an
   epoch takes the seconds it took when recorded, and a trial's start costs the per-trial overhead
   the recording measured (its wall time against its epochs' seconds). The grid arm stops trials
   by median stopping, the ASHA arm by its rungs, with the rules and settings the sweep uses
   (tasks/schedulers.py and the grid files' [scheduler]); the ASHA arm starts no trial once its
   epochs recorded plus those running reach the grid arm's epochs. Time to target is bench_search's:
   the first done trial within 0.3 pp of the grid arm's best.

A replay is a model of the fleet, not the fleet: it leaves out Redis and the workers' own noise,
and it reuses each recorded curve (a point's accuracy at a seed is what it was when recorded). What
it keeps is what decides the ratio: which trials the rules stop, and when each arm first finishes a
good one.

    python benchmarks/replay_search.py [--space bench|wide] [--seeds 0,1,2] [--epochs 9] [--draws 72]
                                       [--replays 600] [--curves PATH]

--space bench is bench_search's grid (6 learning rates x 3 batch sizes x 2 widths) and space.
--space wide is a first search on a problem one does not know: learning rate 1e-4 to 1, weight
decay 1e-5 to 0.1, dropout 0 to 0.8 (grid: the decades, and 3 values of each other key), where
most settings are poor. Recording takes about 7 minutes a seed on 2 cores; a replay, milliseconds.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_search  # noqa: E402  (the benchmark's grid, space and arm runner)

FIXED = "[fixed]\nepochs = {epochs}\nconv = [8, 16]\nseed = {seed}\n"
WIDE_GRID = (
    bench_search.DATA
    + FIXED
    + "[sweep]\nlr = [0.0001, 0.001, 0.01, 0.1, 1.0]\nweight_decay = [0.00001, 0.001, 0.1]\ndropout = [0.0, 0.4, 0.8]\n"
)
WIDE_SPACE = (
    bench_search.DATA
    + FIXED
    + """[space]
lr = {{ dist = "loguniform", low = 0.0001, high = 1.0 }}
weight_decay = {{ dist = "loguniform", low = 0.00001, high = 0.1 }}
dropout = {{ dist = "uniform", low = 0.0, high = 0.8 }}
[scheduler]
name = "asha"
eta = 3
min_epochs = 1
"""
)
SPACES = {"bench": (bench_search.GRID, bench_search.SPACE), "wide": (WIDE_GRID, WIDE_SPACE)}
WORKERS = 2


def record(texts: tuple[str, str], seeds: list[int], epochs: int, draws: int) -> dict:
    """Every grid point and `draws` space draws of each seed, trained to the end on a fleet."""
    from bench_sweep import Fleet

    out: dict = {"epochs": epochs, "arms": []}
    # the fleet first: it points CVFLEET_* at its own Redis, which the Celery app reads on import
    fleet = Fleet("2 worker processes x 1 BLAS thread", WORKERS, 1)
    try:
        from tasks import sweep_store
        from tasks.sweep_grid import parse_grid, read_grid

        with tempfile.TemporaryDirectory() as tmp:
            warmup = Path(tmp) / "warmup.toml"
            warmup.write_text(bench_search.WARMUP)
            bench_search.run_arm(warmup, 0, prune=False)
            for seed in seeds:
                for kind, text in zip(("grid", "space"), texts):
                    path = Path(tmp) / f"{kind}-{seed}.toml"
                    path.write_text(text.format(epochs=epochs, seed=seed))
                    arm = bench_search.run_arm(path, seed, samples=draws if kind == "space" else None, prune=False)
                    curves = [
                        {"val": [e["val_accuracy"] for e in t["history"]], "sec": [e["seconds"] for e in t["history"]]}
                        for t in sweep_store.trials(arm["id"], with_epochs=True)
                    ]
                    scheduler = parse_grid(read_grid(path)).spec["scheduler"]
                    out["arms"].append(
                        {"seed": seed, "kind": kind, "wall": arm["wall"], "scheduler": scheduler, "curves": curves}
                    )
                    print(f"recorded {kind} seed {seed}: {len(curves)} trials in {arm['wall']:.1f} s", flush=True)
    finally:
        fleet.down()
    return out


def overhead(arms: list[dict]) -> float:
    """Seconds a trial's start cost beyond its epochs when recorded: 2 workers' wall time less the
    epochs' seconds, per trial."""
    spare = sum(WORKERS * a["wall"] - sum(sum(c["sec"]) for c in a["curves"]) for a in arms)
    return max(0.0, spare / sum(len(a["curves"]) for a in arms))


def play(curves: list[dict], decide, start_cost: float, budget: int | None = None) -> tuple[list, int]:
    """Run `curves` in order on WORKERS simulated workers; `decide(trial, epoch, value, done)` says
    whether a trial goes on after an epoch that is not its last. Returns (done trials as (finish
    time, final accuracy), in time order; epochs trained). With a `budget`, no trial starts once the
    epochs trained plus those running reach it."""
    events = [(0.0, w, -1, 0) for w in range(WORKERS)]
    done, done_curves, trained, queue = [], [], 0, list(range(len(curves)))
    while events:
        t, w, trial, k = heapq.heappop(events)
        if trial >= 0:
            trained += 1
            val = curves[trial]["val"]
            if k == len(val):
                done.append((t, val[-1]))
                done_curves.append(val)
            elif decide(trial, k, val[k - 1], done_curves):
                heapq.heappush(events, (t + curves[trial]["sec"][k], w, trial, k + 1))
                continue
        running = sum(1 for e in events if e[2] >= 0)
        if queue and (budget is None or trained + running < budget):
            trial = queue.pop(0)
            heapq.heappush(events, (t + start_cost + curves[trial]["sec"][0], w, trial, 1))
    return done, trained


def median_rule(settings: dict, mode: str = "max"):
    """tasks/schedulers.py's median stopping, against the done trials' curves at that epoch."""
    from tasks.schedulers import median_stopping

    def decide(trial, epoch, value, done_curves):
        done = [c[epoch - 1] for c in done_curves]
        return median_stopping(
            value,
            epoch,
            done,
            n_startup_trials=settings["n_startup_trials"],
            n_warmup_steps=settings["n_warmup_steps"],
            mode=mode,
        ).goes_on

    return decide


def asha_rule(settings: dict, epochs: int, mode: str = "max"):
    """tasks/schedulers.py's ASHA, each rung's values kept in the order trials reached it."""
    from tasks.schedulers import asha_promotion, asha_rungs

    rungs = {r: [] for r in asha_rungs(settings["min_epochs"], settings["eta"], epochs)}

    def decide(trial, epoch, value, done_curves):
        if epoch not in rungs:
            return True
        verdict = asha_promotion(value, rungs[epoch], eta=settings["eta"], mode=mode)
        rungs[epoch].append(value)
        return verdict.goes_on

    return decide


def replay(data: dict, replays: int) -> list[dict]:
    epochs, arms = data["epochs"], data["arms"]
    cost = overhead(arms)
    seeds = sorted({a["seed"] for a in arms})
    by = {(a["seed"], a["kind"]): a for a in arms}
    rng, rows = random.Random(0), []
    for i in range(replays):
        seed = seeds[i % len(seeds)]
        grid, space = by[(seed, "grid")], by[(seed, "space")]
        g, s = list(grid["curves"]), list(space["curves"])
        rng.shuffle(g)
        rng.shuffle(s)
        gd, budget = play(g, median_rule(grid["scheduler"]), cost)
        ad, _ = play(s, asha_rule(space["scheduler"], epochs), cost, budget)
        best = max(acc for _, acc in gd)
        target = best - bench_search.TOLERANCE
        tg, ta = bench_search.time_to(gd, target), bench_search.time_to(ad, target)
        rows.append({"grid": tg, "asha": ta, "ratio": ta / tg, "diff": max((a for _, a in ad), default=0.0) - best})
    return rows


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", choices=sorted(SPACES), default="bench", help="which grid and space (default bench)")
    p.add_argument("--seeds", default="0,1,2", help="recipe seeds to record, comma-separated (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=9, help="epochs of a trial that is never stopped (default 9)")
    p.add_argument("--draws", type=int, default=72, help="space draws recorded per seed (default 72)")
    p.add_argument("--replays", type=int, default=600, help="paired replays (default 600)")
    p.add_argument("--curves", type=Path, help="where the recorded curves go; read instead if it exists")
    args = p.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: whole numbers separated by commas, e.g. 0,1,2")
    if args.epochs < 2 or args.draws < 1 or args.replays < 1:
        p.error("--epochs must be at least 2, --draws and --replays at least 1")
    if args.curves and args.curves.exists():
        data = json.loads(args.curves.read_text())
        print(f"curves read from {args.curves}")
    else:
        began = time.time()
        data = record(SPACES[args.space], seeds, args.epochs, args.draws)
        print(f"recorded in {(time.time() - began) / 60:.1f} min")
        if args.curves:
            args.curves.write_text(json.dumps(data) + "\n")
    arms = data["arms"]
    sizes = {k: sorted({len(a["curves"]) for a in arms if a["kind"] == k}) for k in ("grid", "space")}
    print(
        f"curves: seeds {','.join(str(s) for s in sorted({a['seed'] for a in arms}))}, grid {sizes['grid']} points, "
        f"space {sizes['space']} draws, {data['epochs']} epochs; a trial's start costs {overhead(arms):.2f} s "
        f"(from the recording); {WORKERS} workers"
    )
    for kind in ("grid", "space"):
        finals = [c["val"][-1] for a in arms if a["kind"] == kind for c in a["curves"]]
        best = max(finals)
        near = sum(1 for v in finals if v >= best - 0.01)
        print(f"  {kind}: best final val_acc {best:.4f}; {100 * near / len(finals):.0f} % of trials within 1 pp of it")
    rows = replay(data, args.replays)
    ratios = [r["ratio"] for r in rows]
    never = sum(1 for r in rows if math.isinf(r["asha"]))
    diffs = [100 * r["diff"] for r in rows]
    print(
        f"{len(rows)} replays: time to target (the grid's best - 0.3 pp), median: grid+median "
        f"{statistics.median(r['grid'] for r in rows):.1f} s, ASHA {statistics.median(r['asha'] for r in rows):.1f} s "
        f"(ASHA never got there in {never})"
    )
    print(
        f"  best val_acc ASHA - grid: median {statistics.median(diffs):+.1f} pp, 10th percentile "
        f"{quantile(diffs, 0.1):+.1f} pp"
    )
    lo, hi = median_of_7(ratios)
    print(
        f"  ratio ASHA/grid: quartiles {quantile(ratios, 0.25):.2f} {quantile(ratios, 0.75):.2f}; a median of 7 "
        f"(bench_search's figure) lands between {lo:.2f} and {hi:.2f} in 80 % of draws"
    )
    print(f"replayed ratio ASHA/grid time to best, median: {statistics.median(ratios):.2f}")


def median_of_7(ratios: list[float]) -> tuple[float, float]:
    """The 10th and 90th percentiles of the median of 7 ratios drawn from these."""
    rng = random.Random(1)
    medians = [statistics.median(rng.choices(ratios, k=7)) for _ in range(2000)]
    return quantile(medians, 0.1), quantile(medians, 0.9)


if __name__ == "__main__":
    main()
