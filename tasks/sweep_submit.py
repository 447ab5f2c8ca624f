"""Submitting a sweep (client side): check the grid and its data, record the sweep, queue the
trials not yet done.

Resubmission: done and pruned trials are skipped; queued, running, failed and cancelled ones are
queued again under a new task id, which supersedes any older task of the same trial (the older one
writes nothing more and stops at its next epoch). A trial with a checkpoint goes on from it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tasks import sweep_store
from tasks.sweep_grid import parse_grid, read_grid, select
from tasks.trial import train_trial
from workers.asset_cache import data_path


def plan(grid_path, random_n: int | None = None, seed: int = 0, max_trials: int = 1000, samples: int | None = None):
    """(grid, trials, data path): everything checked, nothing written. GridError, DataError or
    AssetError (one line each) on any problem."""
    grid = parse_grid(read_grid(grid_path))
    trials = select(grid, random_n, seed, max_trials, samples)
    return grid, trials, data_path(grid.data["data"])


def submit(grid, trials, data: Path, prune: bool = True) -> tuple[str, int, int]:
    """Record the sweep and queue its trials that are not done or pruned yet.

    Returns (sweep id, trials queued, trials skipped as already finished).
    """
    from workers import config

    cfg = config.load()
    roots = sorted({str(cfg.data), str(cfg.cache), str(Path(os.path.abspath(data)).parent)})
    sweep_store.record_sweep(grid.id, grid.spec, prune, roots)
    queued = 0
    for trial in trials:
        task_id = f"{grid.id}-{trial.id}-{uuid.uuid4().hex[:8]}"
        if sweep_store.queue_trial(grid.id, trial, task_id):
            train_trial.apply_async(kwargs={"sweep_id": grid.id, "trial_id": trial.id}, task_id=task_id)
            queued += 1
    return grid.id, queued, len(trials) - queued
