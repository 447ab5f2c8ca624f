"""One trial of a sweep: train a grid point on queue `train`, record every epoch and the result.

    train_trial(sweep_id=, trial_id=)   (the recipe is read from Redis)
      per epoch: metrics appended to Redis, a checkpoint written, the scheduler asked (median
      stopping or ASHA: tasks/schedulers.py); at the end the result, the leaderboard entry and the
      weights (model.json, weights.npz, training.json)

Where bytes go is the sweep's `storage`, decided at submit (CVFLEET_STORAGE). "redis", the
default: the user's data comes from Redis by content key (tasks.trial_data.local_copy), the
checkpoint is the key cvfleet:sweep:<sweep>:trial:<trial>:checkpoint and the weights the hash
...:weights (tasks.sweep_store), so a trial needs no disk but its own and its results can be read
wherever it ran. "shared": every worker sees the storage root at the same path; the checkpoint is
$CVFLEET_DATA/sweeps/<sweep>/.checkpoints/<trial>.npz and the weights $CVFLEET_DATA/sweeps/<sweep>/<trial>/.

Checkpoints: after each epoch it recorded, a trial saves its weights, optimizer state and random
generator state (nn.checkpoint), replacing the one before. A trial whose worker died (on any host),
or that was cancelled and submitted again, starts after the checkpoint's epoch instead of epoch 1;
the epochs recorded up to there stay (recorded once), and the weights it ends with are bit for bit
those of a run that never stopped. The checkpoint goes when the trial is done or pruned. An epoch
is appended before its checkpoint is written, so the checkpoint never runs ahead of the record; an
epoch recorded but not checkpointed is trained again and recorded anew.

Stopping early is on unless the sweep was submitted with --no-prune. A trial's record is written
once whatever happens to its task (redelivered, superseded, killed): see `tasks.sweep_store`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
import zipfile
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from nn.callbacks import Callback
from tasks import sweep_store
from tasks.base import ItemTask
from tasks.roots import OutsideRoots, resolve_inside
from tasks.schedulers import Scheduler, Stop
from tasks.trial_data import load_splits, local_copy
from workers.app import app
from workers.asset_cache import DATA_SETS


def blas_threads() -> int | None:
    """Threads of the BLAS NumPy uses in this process (the pin the worker set)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def checkpoint_path(sweep_id: str, trial_id: str) -> Path:
    from workers import config

    return config.load().data / "sweeps" / sweep_id / ".checkpoints" / f"{trial_id}.npz"


class Checkpoint:
    """A trial's latest checkpoint where its sweep keeps them: in Redis (storage "redis"), or a
    file on the shared root (storage "shared")."""

    def __init__(self, sweep_id: str, trial_id: str, storage: str):
        self.sweep_id, self.trial_id, self.in_redis = sweep_id, trial_id, storage == "redis"

    def read(self) -> tuple[bytes | Path | None, int, list[dict]]:
        """(its bytes or path, epoch, recorded epochs); (None, 0, []) when there is none to trust."""
        from nn.checkpoint import checkpoint_epoch

        if self.in_redis:
            source = sweep_store.checkpoint(self.sweep_id, self.trial_id)
        else:
            source = checkpoint_path(self.sweep_id, self.trial_id)
        if source is None:
            return None, 0, []
        try:
            return (source, *checkpoint_epoch(source))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None, 0, []

    def save(self, run: str, model, epoch: int, history: list[dict]) -> None:
        from nn.checkpoint import checkpoint_bytes, save_checkpoint

        if self.in_redis:
            sweep_store.put_checkpoint(self.sweep_id, self.trial_id, run, checkpoint_bytes(model, epoch, history))
        else:
            save_checkpoint(model, checkpoint_path(self.sweep_id, self.trial_id), epoch, history)

    def drop(self) -> None:
        if self.in_redis:
            sweep_store.drop_checkpoint(self.sweep_id, self.trial_id)
        else:
            checkpoint_path(self.sweep_id, self.trial_id).unlink(missing_ok=True)


def checkpoint_epoch(sweep_id: str, trial_id: str) -> int:
    """The epoch of the trial's checkpoint (0: none), wherever its sweep keeps it."""
    info = sweep_store.sweep(sweep_id)
    return Checkpoint(sweep_id, trial_id, info["storage"] if info else "shared").read()[1]


class _Recorder(Callback):
    """Append each epoch to Redis, then checkpoint it; stop when superseded, cancelled or stopped
    by the scheduler."""

    def __init__(
        self,
        sweep_id: str,
        trial_id: str,
        run: str,
        checkpoint: Checkpoint,
        scheduler,
        history: list[dict],
        epochs: int,
    ):
        self.sweep_id, self.trial_id, self.run, self.epochs = sweep_id, trial_id, run, epochs
        self.checkpoint, self.scheduler, self.history = checkpoint, scheduler, list(history)
        self.superseded = self.cancelled = False
        self.stop: Stop | None = None

    def on_train_begin(self, model) -> None:
        self.model = model

    def on_epoch_end(self, epoch: int, metrics: dict) -> bool:
        m = {k: (None if v is None else float(v)) for k, v in metrics.items()}
        m.update(epoch=int(epoch), time=time.time(), pid=os.getpid())
        reply = sweep_store.append_epoch(self.sweep_id, self.trial_id, self.run, m)
        if reply == "lost":
            self.superseded = True
            return True
        self.history.append(m)
        self.checkpoint.save(self.run, self.model, epoch, self.history)
        if reply == "cancel" and epoch < self.epochs:  # a cancel at the last epoch's end finds the trial done
            self.cancelled = True
            return True
        if self.scheduler is not None:
            self.stop = self.scheduler.after_epoch(epoch, m)
        return self.stop is not None


def _save_weights(model, sweep_id: str, trial_id: str, run: str, info: dict, recipe: dict, history: list) -> str:
    """model.json + weights.npz + training.json: in Redis (the trial's weights hash, written only
    while `run` owns the trial) or in <data>/sweeps/<sweep>/<trial>/ on shared storage (written to a
    temporary directory and renamed, so a reader never sees half a model). Returns where:
    'redis:<key>' or the directory."""
    from nn.serialize import model_files
    from workers import config

    data = info["grid"]["data"]
    training = {
        "sweep": sweep_id,
        "trial": trial_id,
        "data": data["data"],
        "holdout": data["holdout"],
        "split_seed": data["split_seed"],
        "recipe": recipe,
        "history": history,
    }
    if info["storage"] == "redis":
        sweep_store.put_weights(sweep_id, trial_id, run, model_files(model, training))
        return "redis:" + sweep_store.trial_key(sweep_id, trial_id, "weights")
    final = config.load().data / "sweeps" / sweep_id / trial_id
    tmp = final.with_name(f".{trial_id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, training=training)
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return str(final)


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
    info = sweep_store.sweep(sweep_id)
    ckpt = Checkpoint(sweep_id, trial_id, info["storage"] if info else "shared")
    source, kept, before = ckpt.read()
    claimed = sweep_store.claim(sweep_id, trial_id, self.request.id, run, worker, self.request.attempt, kept)
    if claimed != "ok":
        return {"state": claimed}
    recipe = sweep_store.trial_recipe(sweep_id, trial_id)
    if info is None or recipe is None:
        return {"state": "gone"}
    for m in before:  # epochs the checkpoint holds but Redis lost (appends are idempotent by epoch)
        sweep_store.append_epoch(sweep_id, trial_id, run, m)
    data = info["grid"]["data"]
    local = None
    if info["files"]:
        local = str(local_copy(info["files"]))
    elif data["data"] not in DATA_SETS:
        resolve_inside(data["data"], info["roots"])
    grid = info["grid"]
    metric, mode = grid["metric"], grid["mode"]
    scheduler = None
    if info["prune"]:
        scheduler = Scheduler(sweep_id, trial_id, recipe["epochs"], metric, mode, grid["scheduler"])
    recorder = _Recorder(sweep_id, trial_id, run, ckpt, scheduler, before, recipe["epochs"])
    # a run that died after checkpointing an epoch but before asking about it asks now
    stop = scheduler.after_epoch(kept, before[-1]) if scheduler and before else None
    if stop is None:
        train, val = load_splits(json.dumps(data, sort_keys=True), local)
        model, history = train_recipe(recipe, train, val, callbacks=[recorder], resume_from=source if kept else None)
        epochs = history.epochs
    else:
        recorder.stop, model, epochs = stop, None, before
    if recorder.superseded:
        return {"state": "superseded"}
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
        "score": last[metric],
        "seconds": round(sum(e["seconds"] for e in epochs), 3),
        "blas_threads": blas_threads(),
    }
    if recorder.cancelled:
        sweep_store.finish(sweep_id, trial_id, "cancelled", result, run=run)
        return {"state": "cancelled", "epochs": len(epochs)}
    if recorder.stop is not None:
        s = recorder.stop
        result.update(pruned_at=s.epoch, scheduler=grid["scheduler"]["name"])
        result.update({"median": s.threshold} if s.among is None else {"cutoff": s.threshold, "rung_size": s.among})
        if sweep_store.finish(sweep_id, trial_id, "pruned", result, run=run):
            ckpt.drop()
        return {"state": "pruned", "epochs": len(epochs)}
    result["weights"] = _save_weights(model, sweep_id, trial_id, run, info, recipe, epochs)
    ended = sweep_store.finish(
        sweep_id, trial_id, "done", result, run=run, score=last[metric], curve=[e[metric] for e in epochs]
    )
    if ended:  # an execution that lost the trial leaves the checkpoint to the one that has it
        ckpt.drop()
    return {"state": "done", metric: last[metric]}
