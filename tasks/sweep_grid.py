"""Hyperparameter grids: a TOML or JSON spec expanded into checked recipes with stable ids.

Pure (nn.recipe and the standard library): no files but the spec itself, no Redis. A spec:

    data = "mnist5k"        # a named set (mnist5k, fashion-mnist) or a path (CSV, IDX file, IDX
                            # directory); a relative path is relative to the grid file
    holdout = 0.2           # validation set held out of a single file: a fraction (< 1) or a count,
                            # split with split_seed (a directory validates on its test split)
    split_seed = 0
    label = "auto"          # CSV label column: auto | first | last
    train_limit = 500       # optional: train on the first N training samples only
    val_limit = 200         # optional: validate on the first N held-out samples only

    [fixed]                 # recipe keys (nn/recipe.py DEFAULTS), one value for every trial
    epochs = 3
    conv = [8, 16]          # a list-valued key is ONE value here: this architecture in every trial

    [sweep]                 # recipe keys to sweep: each a list of the values to try
    lr = [0.01, 0.05]
    batch_size = [32, 64]
    conv = [[8, 16], [16, 32]]   # list-valued keys: a list of lists (two architectures)

The trials are the product of the [sweep] lists (keys in sorted order, the last one varying
fastest), each merged over [fixed] and the recipe defaults. A trial's id is a hash of its whole
checked recipe, so the same settings always have the same id; a grid's id is a hash of its
canonical content (data options, fixed, sweep), so submitting the same grid again finds it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from nn.recipe import DEFAULTS, validate_recipe
from workers.asset_cache import DATA_SETS
from workers.spec_file import read_table

DATA_KEYS = {"data": None, "holdout": 0.2, "split_seed": 0, "label": "auto", "train_limit": None, "val_limit": None}
TOP_KEYS = (*DATA_KEYS, "fixed", "sweep")
LIST_KEYS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, list))  # swept as lists of lists
MAX_TRIALS = 1000


class GridError(ValueError):
    """A grid spec that cannot be run: one line naming the key and what to write instead."""


def canonical(obj) -> str:
    """The JSON text ids are hashed from: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def stable_id(obj) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:12]


def trial_id(recipe: dict) -> str:
    """The id of a trial: a hash of its complete checked recipe."""
    return stable_id(validate_recipe(recipe))


@dataclass(frozen=True)
class Trial:
    id: str
    index: int  # position in the full product
    point: dict  # the swept values of this trial
    recipe: dict  # complete, checked recipe


@dataclass(frozen=True)
class Grid:
    data: dict  # the DATA_KEYS, defaults filled in
    fixed: dict
    sweep: dict  # key -> list of values, keys sorted
    id: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "id", stable_id({"data": self.data, "fixed": self.fixed, "sweep": self.sweep}))

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.sweep.values())

    def point(self, index: int) -> dict:
        """The index-th point of the product (the last key varies fastest)."""
        point = {}
        for key in reversed(list(self.sweep)):
            values = self.sweep[key]
            index, i = divmod(index, len(values))
            point[key] = values[i]
        return {k: point[k] for k in self.sweep}

    def trial(self, index: int) -> Trial:
        point = self.point(index)
        try:
            recipe = validate_recipe({**self.fixed, **point})
        except ValueError as e:
            raise GridError(f"trial {canonical(point)}: {e}") from None
        return Trial(stable_id(recipe), index, point, recipe)


def read_grid(path) -> dict:
    """The spec in a .toml or .json file, as a dict (relative data paths made absolute)."""
    path = Path(path)
    spec = read_table(path, "grid", "a grid is a table/object with data, [fixed] and [sweep]", GridError)
    data = spec.get("data")
    if isinstance(data, str) and data and data not in DATA_SETS:
        spec["data"] = str((path.parent / Path(data).expanduser()).resolve())
    return spec


def parse_grid(spec: dict) -> Grid:
    """A checked Grid, or GridError (one line) on anything that would fail or surprise later."""
    if not isinstance(spec, dict):
        raise GridError("a grid is a table/object with data, [fixed] and [sweep]")
    unknown = [k for k in spec if k not in TOP_KEYS]
    if unknown:
        hint = " (recipe keys go under [fixed] or [sweep])" if unknown[0] in DEFAULTS else ""
        raise GridError(f"unknown grid key {unknown[0]!r}{hint}; allowed: {', '.join(TOP_KEYS)}")
    data = {k: spec.get(k, default) for k, default in DATA_KEYS.items()}
    _check_data(data)
    fixed = spec.get("fixed", {})
    sweep = spec.get("sweep", {})
    for name, table in (("fixed", fixed), ("sweep", sweep)):
        if not isinstance(table, dict):
            raise GridError(f"{name} must be a table of recipe keys, not {type(table).__name__}")
        bad = [k for k in table if k not in DEFAULTS]
        if bad:
            raise GridError(f"unknown recipe key {name}.{bad[0]}; recipe keys: {', '.join(DEFAULTS)}")
    try:
        validate_recipe(fixed)
    except ValueError as e:
        raise GridError(f"fixed: {e}") from None
    both = sorted(set(fixed) & set(sweep))
    if both:
        raise GridError(f"{both[0]!r} is both fixed and swept; keep it in one of [fixed] and [sweep]")
    for key in sorted(sweep):
        _check_values(key, sweep[key], fixed)
    return Grid(data, dict(fixed), {k: list(sweep[k]) for k in sorted(sweep)})


def _check_data(data: dict) -> None:
    d = data["data"]
    if not isinstance(d, str) or not d:
        raise GridError("data is required: a named set (mnist5k, fashion-mnist) or a path to a CSV/IDX file")
    h = data["holdout"]
    if (
        isinstance(h, bool)
        or not isinstance(h, (int, float))
        or not math.isfinite(h)
        or h <= 0
        or (h >= 1 and h != int(h))
    ):
        raise GridError(f"holdout = {h!r}: a fraction in (0, 1) or a whole count of held-out samples")
    if h >= 1:
        data["holdout"] = int(h)
    for key in ("split_seed", "train_limit", "val_limit"):
        v = data[key]
        low = 0 if key == "split_seed" else 1
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise GridError(f"{key} = {v!r}: a whole number >= {low}")
    if data["label"] not in ("auto", "first", "last"):
        raise GridError(f"label = {data['label']!r}: auto, first or last")


def _check_values(key: str, values, fixed: dict) -> None:
    if not isinstance(values, list):
        raise GridError(f"sweep.{key} = {values!r}: a list of values to try; one value goes under [fixed]")
    if not values:
        raise GridError(f"sweep.{key} is an empty list: give at least one value")
    if key in LIST_KEYS and not all(isinstance(v, list) for v in values):
        raise GridError(
            f"sweep.{key} = {canonical(values)}: each value is a whole list, so sweep a list of lists "
            f"like [[8, 16], [16, 32]]; one {key} for every trial goes under [fixed]"
        )
    seen = set()
    for i, v in enumerate(values):
        try:
            validate_recipe({**fixed, key: v})
            text = canonical(v)
        except ValueError as e:
            raise GridError(f"sweep.{key}[{i}]: {e}") from None
        if text in seen:
            raise GridError(f"sweep.{key} lists {text} twice")
        seen.add(text)


def select(grid: Grid, random_n: int | None = None, seed: int = 0, max_trials: int = MAX_TRIALS) -> list[Trial]:
    """The trials to run: the whole product, or `random_n` points sampled with `seed`.

    Sampling is prefix-stable: with the same seed, the first N points of a larger sample are the
    N points of the smaller one, so asking for more later adds points to the same sweep.
    Trials whose checked recipes coincide (lr None and the optimizer's default) run once.
    """
    if max_trials < 1:
        raise GridError(f"--max-trials must be at least 1, got {max_trials}")
    size = grid.size
    if random_n is None:
        if size > max_trials:
            raise GridError(
                f"the grid has {size} trials, more than --max-trials {max_trials}: "
                "sample some with --random N or raise --max-trials"
            )
        indices = range(size)
    else:
        if random_n < 1:
            raise GridError(f"--random must be at least 1, got {random_n}")
        if random_n > max_trials:
            raise GridError(f"--random {random_n} is more than --max-trials {max_trials}: raise --max-trials")
        indices = sample_indices(size, random_n, seed)
    trials, seen = [], set()
    for index in indices:
        t = grid.trial(index)
        if t.id not in seen:
            seen.add(t.id)
            trials.append(t)
    return trials


def sample_indices(size: int, n: int, seed: int) -> list[int]:
    """n distinct indices of range(size) in a seeded order (all of them, in order, if n >= size)."""
    if n >= size:
        return list(range(size))
    rng = random.Random(seed)
    picked, seen = [], set()
    while len(picked) < n:
        i = rng.randrange(size)
        if i not in seen:
            seen.add(i)
            picked.append(i)
    return picked
