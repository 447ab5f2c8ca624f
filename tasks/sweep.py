"""Hyperparameter sweeps: a grid (nn.grid) fanned out as one `train_trial` per point on queue train.

    cvfleet sweep grid.toml
      └─ submit: check the grid and the data set, record the sweep, queue the trials not yet done
           └─ train_trial(sweep id, trial id) × M   (queue train; the recipe is read from Redis)
                 per epoch: metrics appended to Redis; median-stopping rule; at the end the result,
                 the leaderboard entry and the weights under $CVFLEET_DATA/sweeps/<sweep>/<trial>/

Median stopping: after epoch k (not the last), a trial whose validation accuracy is below the
median of the *done* trials' validation accuracy after epoch k stops and is recorded pruned, its
metrics kept. The rule waits for MIN_FINISHED done trials. Pruning is on unless the sweep was
submitted with --no-prune.

Resubmission: done and pruned trials are skipped; queued, running and failed ones are queued
again under a new task id, which supersedes any older task of the same trial (the older one
writes nothing more and stops at its next epoch).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import uuid
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from nn.grid import DATA_SETS, GridError, parse_grid, read_grid, select
from tasks import sweeps
from tasks.redis_store import count_attempt
from tasks.roots import resolve_inside
from workers.app import app

MIN_FINISHED = 2  # done trials needed before the median-stopping rule prunes anything


class SweepError(ValueError):
    """A sweep that cannot be submitted: one line, nothing written to Redis."""


# -- data -------------------------------------------------------------------------------------

def data_path(name_or_path: str) -> Path:
    """A named set's path in the asset cache (fetched on first use), or the path itself."""
    if name_or_path in DATA_SETS:
        from workers import assets
        try:
            return assets.ensure(name_or_path)
        except assets.AssetError as e:
            raise SweepError(str(e).splitlines()[0]) from None
    path = Path(name_or_path)
    if not path.exists():
        raise SweepError(f"data set {name_or_path} cannot be found: no such file or directory "
                         f"(named sets: {', '.join(DATA_SETS)})")
    return path


def load_cached(path: Path, split: str = "train", label: str = "auto"):
    """nn.data.load_dataset, kept as a .npz in the asset cache after the first parse.

    Parsing mnist5k's CSV takes about 1.4 s and every worker process does it on its first trial;
    the .npz loads in milliseconds. Keyed by the file's path, size and mtime (and split, label), so
    an edited file is parsed again. Pixels that are whole multiples of 1/255 are kept as bytes.
    """
    import hashlib

    import numpy as np
    from nn.data import Dataset, load_dataset
    from workers import config
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
             for p in sorted(path.iterdir() if path.is_dir() else [path]) if p.is_file()]
    digest = hashlib.sha256(json.dumps([stats, split, label]).encode()).hexdigest()[:20]
    cached = config.load().cache / "datasets" / f"{digest}.npz"
    try:
        with np.load(cached, allow_pickle=False) as f:
            x = f["x"] if f["x"].dtype == np.float32 else (f["x"] / np.float32(255.0)).astype(np.float32)
            return Dataset(x, f["y"])
    except (OSError, KeyError, ValueError):
        pass
    ds = load_dataset(path, split, label=label)
    as_bytes = np.round(ds.x * 255).astype(np.uint8)
    exact = np.array_equal((as_bytes / np.float32(255.0)).astype(np.float32), ds.x)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{digest}.{os.getpid()}.npz")
    np.savez(tmp, x=as_bytes if exact else ds.x, y=ds.y)
    tmp.replace(cached)
    return ds


@functools.lru_cache(maxsize=4)
def load_splits(data_json: str):
    """(train, validation) of a grid's data options, loaded once per process (they never change)."""
    from nn.data import train_val_split
    d = json.loads(data_json)
    path = data_path(d["data"])
    if path.is_dir():
        train, val = load_cached(path, "train"), load_cached(path, "test")
    else:
        train, val = train_val_split(load_cached(path, label=d["label"]), d["holdout"], seed=d["split_seed"])
    if d["train_limit"]:
        train = type(train)(train.x[:d["train_limit"]], train.y[:d["train_limit"]])
    if d["val_limit"]:
        val = type(val)(val.x[:d["val_limit"]], val.y[:d["val_limit"]])
    if not len(train.x) or not len(val.x):
        raise ValueError(f"{d['data']}: {len(train.x)} training and {len(val.x)} validation samples; "
                         "lower holdout or raise the limits")
    return train, val


def blas_threads() -> int | None:
    """Threads of the BLAS NumPy uses in this process (the pin the worker set; DESIGN.md)."""
    from threadpoolctl import threadpool_info
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


# -- the task ---------------------------------------------------------------------------------

class _Recorder:
    """fit() callback: append each epoch to Redis; stop when superseded or pruned."""

    def __init__(self, sweep_id: str, trial_id: str, run: str, epochs: int, prune: bool):
        self.sweep_id, self.trial_id, self.run, self.epochs, self.prune = sweep_id, trial_id, run, epochs, prune
        self.superseded = False
        self.pruned_at = self.median = None

    def on_epoch_end(self, epoch: int, metrics: dict) -> bool:
        m = {k: (None if v is None else float(v)) for k, v in metrics.items()}
        m["epoch"] = int(epoch)
        if not sweeps.append_epoch(self.sweep_id, self.trial_id, self.run, m):
            self.superseded = True
            return True
        if self.prune and epoch < self.epochs and m["val_accuracy"] is not None:
            median = sweeps.median_at(self.sweep_id, epoch, MIN_FINISHED)
            if median is not None and m["val_accuracy"] < median:
                self.pruned_at, self.median = epoch, median
                return True
        return False


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeLimitExceeded):
        return "trial was killed at the task's hard time limit; raise CVFLEET_TASK_TIME_LIMIT or train fewer epochs"
    if isinstance(e, SoftTimeLimitExceeded):
        return "trial ran past the task time limit; raise CVFLEET_TASK_TIME_LIMIT or train fewer epochs"
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0]}" if text else e.__class__.__name__


def _save_weights(model, sweep_id: str, trial_id: str, info: dict, recipe: dict, history: list) -> Path:
    """model.json + weights.npz (+ training.json) in <data>/sweeps/<sweep>/<trial>/, written to a
    temporary directory and renamed, so a reader never sees half a model."""
    from workers import config
    final = config.load().data / "sweeps" / sweep_id / trial_id
    tmp = final.with_name(f".{trial_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    grid = info["grid"]
    (tmp / "training.json").write_text(json.dumps(
        {"sweep": sweep_id, "trial": trial_id, "data": grid["data"]["data"], "holdout": grid["data"]["holdout"],
         "split_seed": grid["data"]["split_seed"], "recipe": recipe, "history": history}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


class _TrialTask(app.Task):
    """A trial killed at the hard time limit (its process is gone: this runs in the worker's main
    process) or failing past its own handling is recorded failed, so its sweep ends."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        sweep_id, trial_id = args[:2]
        sweeps.finish(sweep_id, trial_id, "failed", {"error": _reason(exc)}, task_id=task_id)


@app.task(name="cvfleet.train.trial", bind=True, base=_TrialTask)
def train_trial(self, sweep_id: str, trial_id: str) -> dict:
    """Train one grid point; its record in Redis is written once whatever happens to this task."""
    from nn.recipe import train_recipe
    task_id = self.request.id
    if not count_attempt(task_id):
        sweeps.finish(sweep_id, trial_id, "failed",
                      {"error": "a worker died on this trial 3 times; it is not retried again"}, task_id=task_id)
        return {"state": "failed"}
    run = uuid.uuid4().hex
    worker = self.request.hostname or socket.gethostname()
    claimed = sweeps.claim(sweep_id, trial_id, task_id, run, worker)
    if claimed != "ok":
        return {"state": claimed}
    try:
        info = sweeps.sweep(sweep_id)
        raw = sweeps.client().hget(sweeps.trial_key(sweep_id, trial_id), "recipe")
        if info is None or raw is None:
            return {"state": "gone"}
        recipe = json.loads(raw)
        data = info["grid"]["data"]
        if data["data"] not in DATA_SETS:
            resolve_inside(data["data"], info["roots"])
        train, val = load_splits(json.dumps(data, sort_keys=True))
        recorder = _Recorder(sweep_id, trial_id, run, recipe["epochs"], info["prune"])
        model, history = train_recipe(recipe, train, val, callbacks=[recorder])
        if recorder.superseded:
            return {"state": "superseded"}
        epochs = history.epochs
        last = epochs[-1]
        best = max(epochs, key=lambda e: e["val_accuracy"])
        result = {"epochs": len(epochs), "val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
                  "loss": last["loss"], "accuracy": last["accuracy"], "best_val_accuracy": best["val_accuracy"],
                  "best_epoch": best["epoch"], "seconds": round(sum(e["seconds"] for e in epochs), 3),
                  "blas_threads": blas_threads()}
        if recorder.pruned_at is not None:
            result.update(pruned_at=recorder.pruned_at, median=recorder.median)
            sweeps.finish(sweep_id, trial_id, "pruned", result, run=run)
            return {"state": "pruned", "epochs": len(epochs)}
        weights = _save_weights(model, sweep_id, trial_id, info, recipe, epochs)
        result["weights"] = str(weights)
        sweeps.finish(sweep_id, trial_id, "done", result, run=run, score=last["val_accuracy"],
                      curve=[e["val_accuracy"] for e in epochs])
        return {"state": "done", "val_accuracy": last["val_accuracy"]}
    except Exception as e:  # a trial's own failure (any recipe, any data) fails it alone
        sweeps.finish(sweep_id, trial_id, "failed", {"error": _reason(e)}, run=run)
        return {"state": "failed", "error": _reason(e)}


# -- submission (client) ----------------------------------------------------------------------

def plan(grid_path, random_n: int | None = None, seed: int = 0, max_trials: int = 1000):
    """(grid, trials, data path): everything checked, nothing written. SweepError on any problem."""
    try:
        grid = parse_grid(read_grid(grid_path))
        trials = select(grid, random_n, seed, max_trials)
    except GridError as e:
        raise SweepError(str(e)) from None
    path = data_path(grid.data["data"])
    return grid, trials, path


def submit(grid, trials, data: Path, prune: bool = True) -> tuple[str, int, int]:
    """Record the sweep and queue its trials that are not done or pruned yet.

    Returns (sweep id, trials queued, trials skipped as already finished).
    """
    from workers import config
    cfg = config.load()
    roots = sorted({str(cfg.data), str(cfg.cache), str(Path(os.path.abspath(data)).parent)})
    spec = {"data": grid.data, "fixed": grid.fixed, "sweep": grid.sweep}
    sweeps.record_sweep(grid.id, spec, prune, roots)
    queued = 0
    for trial in trials:
        task_id = f"{grid.id}-{trial.id}-{uuid.uuid4().hex[:8]}"
        if sweeps.queue_trial(grid.id, trial, task_id):
            train_trial.apply_async((grid.id, trial.id), task_id=task_id)
            queued += 1
    return grid.id, queued, len(trials) - queued
