"""One trial of a sweep: train a grid point on queue `train`, record every epoch and the result.

    train_trial(sweep_id=, trial_id=)   (the recipe is read from Redis)
      per epoch: metrics appended to Redis; the median-stopping rule; at the end the result,
      the leaderboard entry and the weights under $CVFLEET_DATA/sweeps/<sweep>/<trial>/

Median stopping: after epoch k (not the last), a trial whose validation accuracy is below the
median of the *done* trials' validation accuracy after epoch k stops and is recorded pruned, its
metrics kept. The rule waits for MIN_FINISHED done trials. Pruning is on unless the sweep was
submitted with --no-prune.

A trial's record is written once whatever happens to its task (redelivered, superseded, killed):
see `tasks.sweep_store`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from nn.callbacks import Callback
from tasks import sweep_store
from tasks.base import ItemTask
from tasks.roots import OutsideRoots, resolve_inside
from tasks.trial_data import load_splits
from workers.app import app
from workers.asset_cache import DATA_SETS

MIN_FINISHED = 2  # done trials needed before the median-stopping rule prunes anything


def blas_threads() -> int | None:
    """Threads of the BLAS NumPy uses in this process (the pin the worker set)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


class _Recorder(Callback):
    """Append each epoch to Redis; stop when superseded or pruned."""

    def __init__(self, sweep_id: str, trial_id: str, run: str, epochs: int, prune: bool):
        self.sweep_id, self.trial_id, self.run, self.epochs, self.prune = sweep_id, trial_id, run, epochs, prune
        self.superseded = False
        self.pruned_at = self.median = None

    def on_epoch_end(self, epoch: int, metrics: dict) -> bool:
        m = {k: (None if v is None else float(v)) for k, v in metrics.items()}
        m["epoch"] = int(epoch)
        if not sweep_store.append_epoch(self.sweep_id, self.trial_id, self.run, m):
            self.superseded = True
            return True
        if self.prune and epoch < self.epochs and m["val_accuracy"] is not None:
            median = sweep_store.median_at(self.sweep_id, epoch, MIN_FINISHED)
            if median is not None and m["val_accuracy"] < median:
                self.pruned_at, self.median = epoch, median
                return True
        return False


def _save_weights(model, sweep_id: str, trial_id: str, info: dict, recipe: dict, history: list) -> Path:
    """model.json + weights.npz + training.json in <data>/sweeps/<sweep>/<trial>/, written to a
    temporary directory and renamed, so a reader never sees half a model."""
    from workers import config

    final = config.load().data / "sweeps" / sweep_id / trial_id
    tmp = final.with_name(f".{trial_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    data = info["grid"]["data"]
    model.save(
        tmp,
        training={
            "sweep": sweep_id,
            "trial": trial_id,
            "data": data["data"],
            "holdout": data["holdout"],
            "split_seed": data["split_seed"],
            "recipe": recipe,
            "history": history,
        },
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


class TrialTask(ItemTask):
    """A trial: its own failure (any recipe, any data) fails it alone. Its final record is guarded by
    the task id, so a superseded task writes nothing."""

    abstract = True
    # What a recipe or a data set can raise: bad shapes and values (ValueError, and DataError and
    # OutsideRoots under it), numerical trouble, files, memory, the soft time limit.
    expected = (ValueError, ArithmeticError, OSError, MemoryError, OutsideRoots, SoftTimeLimitExceeded)
    item = "trial"
    limit_hint = "train fewer epochs"

    def reason(self, exc: BaseException) -> str:
        """'ValueError: ...': a trial's errors come from anywhere in nn, so the kind is kept."""
        if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)) or not str(exc).strip():
            return super().reason(exc)
        return f"{exc.__class__.__name__}: {super().reason(exc)}"

    def fail_item(self, reason: str, task_id: str, sweep_id: str, trial_id: str, **_) -> None:
        sweep_store.finish(sweep_id, trial_id, "failed", {"error": reason}, task_id=task_id)


@app.task(name="cvfleet.train.trial", bind=True, base=TrialTask)
def train_trial(self, *, sweep_id: str, trial_id: str) -> dict:
    """Train one grid point; its record in Redis is written once whatever happens to this task."""
    from nn.recipe import train_recipe

    run = uuid.uuid4().hex
    worker = self.request.hostname or socket.gethostname()
    claimed = sweep_store.claim(sweep_id, trial_id, self.request.id, run, worker, self.request.attempt)
    if claimed != "ok":
        return {"state": claimed}
    info = sweep_store.sweep(sweep_id)
    recipe = sweep_store.trial_recipe(sweep_id, trial_id)
    if info is None or recipe is None:
        return {"state": "gone"}
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
    result = {
        "epochs": len(epochs),
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "loss": last["loss"],
        "accuracy": last["accuracy"],
        "best_val_accuracy": best["val_accuracy"],
        "best_epoch": best["epoch"],
        "seconds": round(sum(e["seconds"] for e in epochs), 3),
        "blas_threads": blas_threads(),
    }
    if recorder.pruned_at is not None:
        result.update(pruned_at=recorder.pruned_at, median=recorder.median)
        sweep_store.finish(sweep_id, trial_id, "pruned", result, run=run)
        return {"state": "pruned", "epochs": len(epochs)}
    result["weights"] = str(_save_weights(model, sweep_id, trial_id, info, recipe, epochs))
    sweep_store.finish(
        sweep_id,
        trial_id,
        "done",
        result,
        run=run,
        score=last["val_accuracy"],
        curve=[e["val_accuracy"] for e in epochs],
    )
    return {"state": "done", "val_accuracy": last["val_accuracy"]}
