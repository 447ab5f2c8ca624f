"""`cvfleet sweep GRID` and `cvfleet sweep show|best|export|plot|cancel|list|delete`: hyperparameter sweeps.

    cvfleet sweep examples/grid-demo.toml          queue the grid's trials, follow them, print the leaderboard
    cvfleet sweep show ID                          the leaderboard (IDs may be shortened to a unique prefix)
    cvfleet sweep best ID [--out DIR]              the best trial and its weights (for `cvfleet evaluate`)
    cvfleet sweep export ID --csv trials.csv       every trial, one row each
    cvfleet sweep plot ID --out curves.png         every trial's validation accuracy per epoch
    cvfleet sweep cancel ID                        stop queued and running trials (submitting again continues)
    cvfleet sweep list | delete ID

Grid syntax: tasks/sweep_grid.py (data options, [fixed], [sweep] and [space] tables of recipe keys,
metric and mode, [scheduler]).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from workers import config, fleet
from workers.commands.base import Group
from workers.commands.watch import watch


class _GridOrCommand(Group):
    """`cvfleet sweep GRID ...` runs a grid; `cvfleet sweep show ID` etc. are subcommands."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _redis():
    fleet.require_redis(config.load())


def _resolve(sweep_id: str) -> str:
    """The full sweep id for an id or a unique prefix of one."""
    from tasks import sweep_store

    if sweep_store.sweep(sweep_id):
        return sweep_id
    matches = [s for s in sweep_store.sweep_ids(10_000) if s.startswith(sweep_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.ClickException(
            f"{sweep_id!r} matches {len(matches)} sweeps ({', '.join(matches[:4])}): give more of it"
        )
    raise click.ClickException(f"no sweep {sweep_id!r} in Redis: see `cvfleet sweep list`")


@click.group(cls=_GridOrCommand, invoke_without_command=False)
def sweep():
    """Hyperparameter sweeps of the NumPy CNN across the fleet.

    \b
      cvfleet sweep GRID [--random N | --samples N] [--seed S] [--no-prune] [--no-wait] [--max-trials N]
      cvfleet sweep show|best|export|plot|cancel|delete ID,  cvfleet sweep list
    \b
    GRID is a TOML or JSON file: data options, a [fixed] table and a [sweep] table of recipe
    keys, each swept key a list of values (a list-valued key like conv: a list of lists), a
    [space] of distributions to sample, the metric, and a [scheduler] (median or asha):
    \b
      data = "mnist5k"
      train_limit = 1000
      metric = "val_accuracy"
      mode = "max"
      [fixed]
      epochs = 9
      [sweep]
      conv = [[8, 16], [16, 32]]
      [space]
      lr = { dist = "loguniform", low = 1e-3, high = 0.3 }
      [scheduler]
      name = "asha"
      eta = 3
    """


@sweep.command("run")
@click.argument("grid", type=click.Path(dir_okay=False))
@click.option(
    "--random",
    "random_n",
    type=int,
    default=None,
    metavar="N",
    help="Sample N points of the grid (seeded) instead of running the full product.",
)
@click.option(
    "--samples",
    type=int,
    default=None,
    metavar="N",
    help="Draw N points from the grid's [space] (seeded), each run at every point of the [sweep] product.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of --random and --samples.")
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Stop trials early with the grid's [scheduler]: median stopping (the default: below the median of "
    "done trials at that epoch, once 2 are done) or ASHA.",
)
@click.option("--max-trials", default=1000, show_default=True, help="Refuse a sweep of more trials than this.")
@click.option("--no-wait", is_flag=True, help="Print the sweep id and return; look later with `cvfleet sweep show ID`.")
def run(grid, random_n, samples, seed, prune, max_trials, no_wait):
    """Queue the trials of GRID not yet finished, follow them, print the leaderboard.

    Submitting the same grid again resumes it: done and pruned trials are kept, the rest
    (failed and cancelled ones too) run again, from their checkpoints where they have one.
    """
    from tasks import sweep_submit

    grid_, trials, data = sweep_submit.plan(grid, random_n, seed, max_trials, samples)
    fleet.require_redis(config.load())
    sweep_id, queued, skipped = sweep_submit.submit(grid_, trials, data, prune=prune)
    if no_wait:
        click.echo(sweep_id)
        return
    resumed = f", {skipped} already finished" if skipped else ""
    click.echo(
        f"sweep {sweep_id}: {queued} trial(s) queued{resumed}; data {grid_.data['data']}, "
        f"{_stopping(grid_.spec, prune, max((t.recipe['epochs'] for t in trials), default=0))}",
        err=True,
    )
    sys.exit(follow(sweep_id))


def _stopping(grid: dict, prune: bool, epochs: int = 0) -> str:
    """What stops trials early, in a few words."""
    s = grid["scheduler"]
    ranked = "" if grid["metric"] == "val_accuracy" else f", ranked by {grid['metric']} ({grid['mode']})"
    if not prune:
        return f"pruning off{ranked}"
    if s["name"] == "asha":
        from tasks.schedulers import asha_rungs

        rungs = ", ".join(map(str, asha_rungs(s["min_epochs"], s["eta"], epochs))) or "none"
        return f"ASHA eta {s['eta']} (rungs at epochs {rungs}){ranked}"
    return f"pruning on{ranked}"


def follow(sweep_id: str) -> int:
    """Follow the sweep until every trial is done, pruned or failed; print the leaderboard.
    Exit code 1 if a trial failed. A bar on a terminal, a line per change elsewhere."""
    from tasks import sweep_store

    info = sweep_store.progress(sweep_id)
    show = _Bar(info) if sys.stderr.isatty() else _Lines()
    try:
        fetch, hint = (lambda: sweep_store.progress(sweep_id)), f"cvfleet sweep show {sweep_id} --follow"
        info = watch(info, fetch, lambda i: i["finished"], show, 0.1, hint)
    except KeyboardInterrupt:
        click.echo(
            f"\nsweep {sweep_id} keeps running on the fleet; watch it with `cvfleet sweep show {sweep_id} --follow` "
            "(submitting the grid again would restart its unfinished trials)",
            err=True,
        )
        return 130
    print_leaderboard(sweep_id)
    return 1 if info["counts"]["failed"] else 0


def _status(info: dict) -> str:
    c = info["counts"]
    best = f", best {info['best'][1]:.4f} ({info['best'][0]})" if info["best"] else ""
    cancelled = f" cancelled {c['cancelled']}" if c["cancelled"] else ""
    return (
        f"done {c['done']} running {c['running']} queued {c['queued']} pruned {c['pruned']} failed {c['failed']}"
        f"{cancelled}{best}"
    )


class _Bar:
    def __init__(self, info):
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(info["trials"]), desc=f"sweep {info['id']}", unit="trial", dynamic_ncols=True, file=sys.stderr
        )

    def update(self, info):
        c = info["counts"]
        self.bar.total = len(info["trials"])
        self.bar.n = c["done"] + c["pruned"] + c["failed"] + c["cancelled"]
        self.bar.set_postfix_str(_status(info), refresh=True)

    def close(self):
        self.bar.close()


class _Lines:
    def __init__(self):
        self.last = None

    def update(self, info):
        line = _status(info)
        if line != self.last:
            self.last = line
            c = info["counts"]
            ended = c["done"] + c["pruned"] + c["failed"] + c["cancelled"]
            click.echo(f"sweep {info['id']}: {ended}/{len(info['trials'])} finished: {line}", err=True)

    def close(self):
        pass


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _num(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def _data_line(grid: dict) -> str:
    d = grid["data"]
    parts = [f"holdout {d['holdout']}"] if d["holdout"] else []
    parts += [f"{k.split('_')[0]} {d[k]}" for k in ("train_limit", "val_limit") if d.get(k)]
    return f"{d['data']} ({', '.join(parts)})"


def print_leaderboard(sweep_id: str) -> None:
    """Done trials best first, then the pruned and the failed ones."""
    from tasks import sweep_store

    info = sweep_store.progress(sweep_id)
    grid = info["grid"]
    swept = [*grid["sweep"], *grid["space"]]
    by_id = {t["id"]: t for t in info["trials"]}
    c = info["counts"]
    state = "finished" if info["finished"] else "running"
    cancelled = f", {c['cancelled']} cancelled" if c["cancelled"] else ""
    ranked = "" if grid["metric"] == "val_accuracy" else f"; ranked by {grid['metric']} ({grid['mode']})"
    click.echo(
        f"sweep {sweep_id} {state}: {len(info['trials'])} trials, {c['done']} done, {c['pruned']} pruned, "
        f"{c['failed']} failed{cancelled}; data {_data_line(grid)}{ranked}"
    )
    header = ["rank", "trial", "val_acc", "best", "val_loss", "epochs", "seconds", "worker", *swept]
    rows = []
    for rank, (tid, _) in enumerate(sweep_store.leaderboard(sweep_id, grid["mode"]), 1):
        t = by_id.get(tid)
        if t is None:
            continue
        rows.append(
            [
                str(rank),
                tid,
                _num(t["val_accuracy"]),
                _num(t["best_val_accuracy"]),
                _num(t["val_loss"]),
                str(t["epochs"]),
                _num(t["seconds"], ".1f"),
                t.get("worker", ""),
                *(_fmt(t["point"].get(k)) for k in swept),
            ]
        )
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            click.echo(
                "  ".join(
                    v.rjust(w) if i in (0, 2, 3, 4, 5, 6) else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))
                ).rstrip()
            )
    for t in info["trials"]:
        point = " ".join(f"{k}={_fmt(v)}" for k, v in t["point"].items())
        if t["state"] == "pruned":
            score = t["score"] if t["score"] is not None else t["val_accuracy"]
            value = f"{grid['metric'].replace('accuracy', 'acc')} {_num(score)}"
            if t.get("scheduler") == "asha":
                why = f"rung of {t['rung_size']}, top 1/{grid['scheduler']['eta']} needed {_num(t['cutoff'])}"
            else:
                why = f"median of finished trials {_num(t['median'])}"
            click.echo(f"pruned  {t['id']}  {value} after epoch {t['pruned_at']} ({why})  {point}")
        elif t["state"] == "cancelled":
            click.echo(f"cancelled {t['id']}  {t['epochs'] or 0} epoch(s) recorded  {point}")
        elif t["state"] == "failed":
            click.echo(f"failed  {t['id']}  {t.get('error', '')}  {point}")
        elif t["state"] in ("queued", "running"):
            click.echo(f"{t['state']:7s} {t['id']}  {t['epochs'] or 0} epoch(s) so far  {point}")


@sweep.command("show")
@click.argument("sweep_id")
@click.option("--follow", "follow_", is_flag=True, help="Follow the sweep to its end first.")
def show(sweep_id, follow_):
    """The leaderboard of sweep SWEEP_ID: done trials by final validation accuracy."""
    _redis()
    sweep_id = _resolve(sweep_id)
    if follow_:
        sys.exit(follow(sweep_id))
    print_leaderboard(sweep_id)


def best_trial(sweep_id: str) -> dict | None:
    from tasks import sweep_store

    board = sweep_store.leaderboard(sweep_id)
    if not board:
        return None
    return next(t for t in sweep_store.trials(sweep_id) if t["id"] == board[0][0])


@sweep.command("best")
@click.argument("sweep_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory to write the best trial's model into (model.json, weights.npz, training.json), wherever "
    "the trial ran. Default: where a shared root keeps it, or <data>/sweeps/ID/TRIAL here when it is in Redis.",
)
def best(sweep_id, out):
    """The best trial of SWEEP_ID, its settings and its weights directory."""
    from tasks import sweep_store

    _redis()
    sweep_id = _resolve(sweep_id)
    t = best_trial(sweep_id)
    if t is None:
        raise click.ClickException(f"sweep {sweep_id} has no finished trial yet: see `cvfleet sweep show {sweep_id}`")
    d = sweep_store.sweep(sweep_id)["grid"]["data"]
    weights = write_weights(sweep_id, t, out)
    click.echo(
        f"best trial {t['id']}: val_acc {t['val_accuracy']:.4f} after {t['epochs']} epoch(s) "
        f"(best {t['best_val_accuracy']:.4f} at epoch {t['best_epoch']}), {t['seconds']:.1f} s on {t['worker']}"
    )
    click.echo(f"settings: {json.dumps(t['point'])}")
    click.echo(f"recipe:   {json.dumps(t['recipe'])}")
    click.echo(f"weights:  {weights}")
    holdout = "" if Path(d["data"]).is_dir() else f" --holdout {d['holdout']} --split-seed {d['split_seed']}"
    click.echo(f"evaluate: cvfleet evaluate --model {weights} --data {d['data']}{holdout}")


def write_weights(sweep_id: str, trial: dict, out: str | None) -> str:
    """A directory on this machine holding the trial's model: copied out of Redis (the trial's
    weights hash) or from the shared root into `out`, or the shared directory itself without `out`."""
    import shutil

    from tasks import sweep_store

    if not trial["weights"].startswith("redis:"):
        if out is None:
            return trial["weights"]
        shutil.copytree(trial["weights"], out, dirs_exist_ok=True)
        return str(out)
    files = sweep_store.weights(sweep_id, trial["id"])
    if files is None:
        raise click.ClickException(
            f"the weights of trial {trial['id']} are no longer in Redis (the sweep expired or was deleted): "
            "submit the grid again to train it anew"
        )
    final = Path(out) if out else config.load().data / "sweeps" / sweep_id / trial["id"]
    final.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():  # each file whole or not at all
        tmp = final / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(final / name)
    return str(final)


@sweep.command("export")
@click.argument("sweep_id")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="File to write.")
def export(sweep_id, csv_path):
    """Every trial of SWEEP_ID as one CSV row: state, metrics, settings, weights, error."""
    from tasks import sweep_store

    _redis()
    sweep_id = _resolve(sweep_id)
    info = sweep_store.sweep(sweep_id)
    swept = [*info["grid"]["sweep"], *info["grid"]["space"]]
    ranks = {tid: i for i, (tid, _) in enumerate(sweep_store.leaderboard(sweep_id), 1)}
    fields = [
        "trial",
        "state",
        "rank",
        "val_accuracy",
        "best_val_accuracy",
        "best_epoch",
        "val_loss",
        "loss",
        "accuracy",
        "epochs",
        "seconds",
        "worker",
        "blas_threads",
        "weights",
        "error",
        *swept,
        "recipe",
    ]
    trials = sweep_store.trials(sweep_id)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for t in trials:
            w.writerow(
                [
                    t["id"],
                    t["state"],
                    ranks.get(t["id"], ""),
                    *("" if t.get(k) is None else t[k] for k in fields[3:15]),
                    *(_fmt(t["point"][k]) for k in swept),
                    json.dumps(t["recipe"], sort_keys=True),
                ]
            )
    click.echo(f"wrote {len(trials)} trial(s) to {csv_path}")


@sweep.command("plot")
@click.argument("sweep_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
def plot(sweep_id, out):
    """Every trial's validation accuracy per epoch (pruned dashed, the best one thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from tasks import sweep_store

    _redis()
    sweep_id = _resolve(sweep_id)
    trials = [t for t in sweep_store.trials(sweep_id, with_epochs=True) if t["history"]]
    if not trials:
        raise click.ClickException(f"sweep {sweep_id} has no trial with a finished epoch yet")
    board = sweep_store.leaderboard(sweep_id)
    best_id = board[0][0] if board else None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for t in trials:
        epochs = [e["epoch"] for e in t["history"]]
        acc = [e["val_accuracy"] for e in t["history"]]
        label = f"{t['id'][:6]} " + " ".join(f"{k}={_fmt(v)}" for k, v in t["point"].items())
        style = {
            "linestyle": "--" if t["state"] == "pruned" else "-",
            "marker": "o",
            "markersize": 3,
            "linewidth": 3 if t["id"] == best_id else 1.2,
        }
        if t["state"] == "pruned":
            label += " (pruned)"
        ax.plot(epochs, acc, label=label, **style)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"sweep {sweep_id}: {len(trials)} trial(s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    click.echo(f"wrote {out} ({len(trials)} curves)")


@sweep.command("cancel")
@click.argument("sweep_id")
def cancel(sweep_id):
    """Cancel SWEEP_ID: queued trials at once, running ones at the end of their current epoch.

    Their metrics and checkpoints stay; submitting the grid again continues them.
    """
    from tasks import sweep_store

    _redis()
    sweep_id = _resolve(sweep_id)
    counts = sweep_store.cancel(sweep_id)
    now, stopping = counts.pop("queued", 0), counts.pop("running", 0)
    click.echo(
        f"cancelled sweep {sweep_id}: {now} queued trial(s) cancelled, {stopping} running trial(s) stop at "
        f"the end of their epoch, {sum(counts.values())} had already ended"
    )


@sweep.command("list")
def list_():
    """Sweeps in Redis, newest first."""
    from tasks import sweep_store

    _redis()
    for sweep_id in sweep_store.sweep_ids():
        info = sweep_store.progress(sweep_id)
        if info is None:
            continue
        c = info["counts"]
        state = "finished" if info["finished"] else "running"
        best = f"best {info['best'][1]:.4f}" if info["best"] else "best -"
        click.echo(
            f"{sweep_id}  {state:8s}  {len(info['trials'])} trials: {c['done']} done, {c['pruned']} pruned, "
            f"{c['failed']} failed  {best}  {_data_line(info['grid'])}"
        )


@sweep.command("delete")
@click.argument("sweep_id")
def delete(sweep_id):
    """Remove every Redis key of SWEEP_ID: records, checkpoints, weights, its data (weights on disk stay)."""
    from tasks import sweep_store

    _redis()
    sweep_id = _resolve(sweep_id)
    shared = sweep_store.sweep(sweep_id)["storage"] == "shared"
    n = sweep_store.delete(sweep_id)
    if shared:
        weights = config.load().data / "sweeps" / sweep_id
        click.echo(f"deleted sweep {sweep_id}: {n} key(s); its weights stay in {weights}")
    else:
        click.echo(f"deleted sweep {sweep_id}: {n} key(s), its checkpoints and weights among them")
