"""A trial's data: the grid's data options loaded into (train, validation) sets, parsed once per
worker process and kept as a .npz in the asset cache across processes."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from workers.asset_cache import data_path


def load_cached(path: Path, split: str = "train", label: str = "auto"):
    """nn.data.load_dataset, kept as a .npz in the asset cache after the first parse.

    Parsing mnist5k's CSV takes about 1.4 s and every worker process does it on its first trial;
    the .npz loads in milliseconds. Keyed by the file's path, size and mtime (and split, label), so
    an edited file is parsed again. Pixels that are whole multiples of 1/255 are kept as bytes.
    """
    import numpy as np

    from nn.data import Dataset, load_dataset
    from workers import config

    stats = [
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.iterdir() if path.is_dir() else [path])
        if p.is_file()
    ]
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
        train = type(train)(train.x[: d["train_limit"]], train.y[: d["train_limit"]])
    if d["val_limit"]:
        val = type(val)(val.x[: d["val_limit"]], val.y[: d["val_limit"]])
    if not len(train.x) or not len(val.x):
        raise ValueError(
            f"{d['data']}: {len(train.x)} training and {len(val.x)} validation samples; "
            "lower holdout or raise the limits"
        )
    return train, val
