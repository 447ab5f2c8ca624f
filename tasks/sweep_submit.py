"""Submitting a sweep (client side): check the grid and its data, record the sweep, queue the
trials not yet done.

Data: a named set is fetched by each train host from the registry. A user's file (or directory of
files) is stored in Redis under its sha256 at submit, unless CVFLEET_STORAGE=shared: train hosts
need not see the submitter's disk. At most CVFLEET_BLOB_MAX_MIB (256) MiB of it.

Resubmission: done and pruned trials are skipped; queued, running, failed and cancelled ones are
queued again under a new task id, which supersedes any older task of the same trial (the older one
writes nothing more and stops at its next epoch). A trial with a checkpoint goes on from it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from tasks import sweep_store
from tasks.sweep_grid import parse_grid, read_grid, select
from tasks.trial import train_trial
from workers.asset_cache import DATA_SETS, data_path


def plan(grid_path, random_n: int | None = None, seed: int = 0, max_trials: int = 1000, samples: int | None = None):
    """(grid, trials, data path): everything checked, nothing written. GridError, DataError or
    AssetError (one line each) on any problem."""
    grid = parse_grid(read_grid(grid_path))
    trials = select(grid, random_n, seed, max_trials, samples)
    data = data_path(grid.data["data"])
    if _sent(grid):
        _check_size(data)
    return grid, trials, data


def _sent(grid) -> bool:
    """Whether the grid's data goes through Redis: a user's data, unless storage is shared."""
    from workers import config

    return config.load().storage == "redis" and grid.data["data"] not in DATA_SETS


def _data_files(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else [data]


def _check_size(data: Path) -> None:
    from nn.data import DataError
    from workers import config

    limit = config.load().blob_max_mib
    size = sum(p.stat().st_size for p in _data_files(data))
    if size > limit * 2**20:
        raise DataError(
            f"{data} is {size / 2**20:.1f} MiB, more than the {limit:g} MiB a sweep's data may take through "
            "Redis (CVFLEET_BLOB_MAX_MIB): raise the limit, or share the storage root and set CVFLEET_STORAGE=shared"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def send_data(data: Path) -> dict:
    """Store the user's data files in Redis by content (each sent once while Redis holds it);
    returns what the sweep records: {"dir": bool, "files": {name: sha256}}."""
    files = {}
    for p in _data_files(data):
        files[p.name] = _sha256(p)
        sweep_store.put_blob(files[p.name], p.read_bytes)
    return {"dir": data.is_dir(), "files": files}


def submit(grid, trials, data: Path, prune: bool = True) -> tuple[str, int, int]:
    """Record the sweep and queue its trials that are not done or pruned yet.

    Returns (sweep id, trials queued, trials skipped as already finished).
    """
    from workers import config

    cfg = config.load()
    roots = sorted({str(cfg.data), str(cfg.cache), str(Path(os.path.abspath(data)).parent)})
    files = send_data(data) if _sent(grid) else None
    sweep_store.record_sweep(grid.id, grid.spec, prune, roots, cfg.storage, files)
    queued = 0
    for trial in trials:
        task_id = f"{grid.id}-{trial.id}-{uuid.uuid4().hex[:8]}"
        if sweep_store.queue_trial(grid.id, trial, task_id):
            train_trial.apply_async(kwargs={"sweep_id": grid.id, "trial_id": trial.id}, task_id=task_id)
            queued += 1
    return grid.id, queued, len(trials) - queued
