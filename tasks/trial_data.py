"""A trial's data: the grid's data options loaded into (train, validation) sets, parsed once per
worker process and kept as a .npz in the asset cache across processes.

Where the data comes from: a named set (mnist5k, ...) from the registry through the asset cache,
checksum verified, on the trial's own host; a user's file or directory from Redis, where the
submitter stored it under its sha256 (`local_copy`; on shared storage, from its path).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
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


def local_copy(files: dict) -> Path:
    """The user's data of a sweep on this host: {"dir": bool, "files": {name: sha256}} fetched from
    Redis once, each file checked against its hash, and kept under $CVFLEET_DATA/blobs/: a file as
    <sha256>/<its name>, a directory as <sha256 of the name-to-hash map>/. DataError (one line) if a
    file has left Redis or its bytes do not match (a corrupt copy is dropped, so submitting again
    sends it anew)."""
    from workers import config

    root, names = config.load().data / "blobs", files["files"]
    if not files["dir"]:
        ((name, sha),) = names.items()
        path = root / sha / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            tmp.write_bytes(_fetch(name, sha))
            tmp.replace(path)
        return path
    home = root / hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()
    if not home.is_dir():
        tmp = home.with_name(f".{home.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for name, sha in names.items():
                (tmp / name).write_bytes(_fetch(name, sha))
            tmp.rename(home)
        except OSError:  # another process of this host made it first
            if not home.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return home


def _fetch(name: str, sha: str) -> bytes:
    from nn.data import DataError
    from tasks import sweep_store

    data = sweep_store.blob(sha)
    if data is None:
        raise DataError(f"{name} (sha256 {sha[:12]}) is no longer in Redis: submit the sweep again to send it")
    if hashlib.sha256(data).hexdigest() != sha:
        sweep_store.drop_blob(sha)
        raise DataError(
            f"{name}: the bytes in Redis do not match its sha256 {sha[:12]} (corrupt): "
            "submit the sweep again to send it anew"
        )
    return data


@functools.lru_cache(maxsize=4)
def load_splits(data_json: str, local: str | None = None):
    """(train, validation) of a grid's data options, loaded once per process (they never change).
    `local`: where this host holds the user's data (`local_copy`), if not at the grid's path."""
    from nn.data import train_val_split

    d = json.loads(data_json)
    path = Path(local) if local else data_path(d["data"])
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
