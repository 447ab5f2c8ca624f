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

    [space]                 # recipe keys to sample (with --samples N, seeded by --seed): a distribution each
    lr = { dist = "loguniform", low = 1e-3, high = 0.3 }    # log-uniform in [low, high]
    momentum = { dist = "uniform", low = 0.5, high = 0.95 } # uniform in [low, high]
    dense = { dist = "int", low = 32, high = 256 }          # a whole number in [low, high]
    optimizer = { dist = "choice", values = ["sgd", "adam"] }

    metric = "val_accuracy" # what ranks trials and what the scheduler compares: val_accuracy, val_loss,
    mode = "max"            # accuracy or loss; max or min (default: max for an accuracy, min for a loss)

    [scheduler]             # what stops trials early (--no-prune: nothing)
    name = "median"         # median stopping (the default):
    n_startup_trials = 2    #   prune nothing until this many trials are done
    n_warmup_steps = 0      #   prune nothing at epochs <= this
    # name = "asha"         # asynchronous successive halving (tasks/asha.py):
    # eta = 3               #   keep the top 1/eta of each rung
    # min_epochs = 1        #   rungs at epochs min_epochs * eta^k

The trials are the product of the [sweep] lists (keys in sorted order, the last one varying
fastest), each merged over [fixed] and the recipe defaults. With a [space], each of the N samples
(sample i drawn from its own generator seeded by (seed, i), so a larger N extends a smaller one) is
run at every grid point. A trial's id is a hash of its whole checked recipe, so the same settings
always have the same id; a grid's id is a hash of its canonical content (data options, fixed, sweep,
and space, objective and scheduler when given), so submitting the same grid again finds it.
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
TOP_KEYS = (*DATA_KEYS, "fixed", "sweep", "space", "metric", "mode", "scheduler")
LIST_KEYS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, list))  # swept as lists of lists
MAX_TRIALS = 1000
METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")  # what a trial records per epoch
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
SCHEDULERS = {
    "median": {"n_startup_trials": 2, "n_warmup_steps": 0},
    "asha": {"eta": 3, "min_epochs": 1},
}
DEFAULT_SCHEDULER = {"name": "median", **SCHEDULERS["median"]}


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
    space: dict = field(default_factory=dict)  # key -> distribution table, keys sorted
    metric: str = "val_accuracy"
    mode: str = "max"
    scheduler: dict = field(default_factory=lambda: dict(DEFAULT_SCHEDULER))
    id: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "id", stable_id(self.content()))

    def content(self) -> dict:
        """What the id is hashed from: the keys of a plain grid, plus the rest only when they are
        given, so a grid written before spaces and schedulers existed keeps its id."""
        out = {"data": self.data, "fixed": self.fixed, "sweep": self.sweep}
        if self.space:
            out["space"] = self.space
        if (self.metric, self.mode) != ("val_accuracy", "max"):
            out["objective"] = [self.metric, self.mode]
        if self.scheduler != DEFAULT_SCHEDULER:
            out["scheduler"] = self.scheduler
        return out

    @property
    def spec(self) -> dict:
        """The grid as the sweep's record keeps it (what trials and `sweep show` read)."""
        return {
            "data": self.data,
            "fixed": self.fixed,
            "sweep": self.sweep,
            "space": self.space,
            "metric": self.metric,
            "mode": self.mode,
            "scheduler": self.scheduler,
        }

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

    def trial(self, index: int, sample: dict | None = None) -> Trial:
        point = {**self.point(index % self.size), **(sample or {})}
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
    space = _check_space(spec.get("space", {}), fixed, sweep)
    metric, mode = _check_objective(spec.get("metric", "val_accuracy"), spec.get("mode"))
    scheduler = _check_scheduler(spec.get("scheduler", {}))
    return Grid(data, dict(fixed), {k: list(sweep[k]) for k in sorted(sweep)}, space, metric, mode, scheduler)


def _check_space(space, fixed: dict, sweep: dict) -> dict:
    """The [space] table checked: each key a recipe key in neither [fixed] nor [sweep], each value a
    distribution whose every draw is a valid recipe value."""
    if not isinstance(space, dict):
        raise GridError(f"space must be a table of recipe keys, not {type(space).__name__}")
    out = {}
    for key in sorted(space):
        d = space[key]
        where = f"space.{key}"
        if key not in DEFAULTS:
            raise GridError(f"unknown recipe key {where}; recipe keys: {', '.join(DEFAULTS)}")
        if key in fixed or key in sweep:
            table = "fixed" if key in fixed else "sweep"
            raise GridError(f"{key!r} is both in [space] and in [{table}]; keep it in one of them")
        if not isinstance(d, dict) or "dist" not in d:
            raise GridError(f'{where} = {d!r}: a distribution such as {{ dist = "uniform", low = 0.1, high = 0.9 }}')
        kind = d["dist"]
        if kind not in DISTRIBUTIONS:
            raise GridError(f"{where}: unknown distribution {kind!r}; one of {', '.join(DISTRIBUTIONS)}")
        allowed = {"dist", "values"} if kind == "choice" else {"dist", "low", "high"}
        extra = sorted(set(d) - allowed)
        if extra:
            raise GridError(f"{where}: {kind} takes {', '.join(sorted(allowed - {'dist'}))}, not {extra[0]}")
        if kind == "choice":
            _check_values(key, d.get("values"), fixed, where=f"{where}.values")
            out[key] = {"dist": kind, "values": list(d["values"])}
            continue
        low, high = d.get("low"), d.get("high")
        number = int if kind == "int" else (int, float)
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, number) or not math.isfinite(v):
                what = "a whole number" if kind == "int" else "a finite number"
                raise GridError(f"{where}.{name} = {v!r}: {what}")
        if low >= high:
            raise GridError(f"{where}: low = {low!r} must be below high = {high!r}")
        if kind == "loguniform" and low <= 0:
            raise GridError(f"{where}: loguniform needs low > 0, got {low!r}")
        for v in (low, high):
            try:
                validate_recipe({**fixed, key: v})
            except ValueError as e:
                raise GridError(f"{where}: {e}") from None
        out[key] = {"dist": kind, "low": low, "high": high}
    return out


def _check_objective(metric, mode) -> tuple[str, str]:
    if metric not in METRICS:
        raise GridError(f"metric = {metric!r} is not recorded; a trial records {', '.join(METRICS)} per epoch")
    if mode is None:
        mode = "max" if "accuracy" in metric else "min"
    if mode not in ("min", "max"):
        raise GridError(f"mode = {mode!r}: min or max")
    return metric, mode


def _whole(where: str, v, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise GridError(f"{where} = {v!r}: a whole number >= {low}")
    return v


def _check_scheduler(table) -> dict:
    if not isinstance(table, dict):
        raise GridError(f'scheduler must be a table (name = "median" or "asha"), not {type(table).__name__}')
    name = table.get("name", "median")
    if name not in SCHEDULERS:
        raise GridError(f"scheduler.name = {name!r}: one of {', '.join(SCHEDULERS)}")
    defaults = SCHEDULERS[name]
    extra = sorted(set(table) - {"name", *defaults})
    if extra:
        raise GridError(f"scheduler.{extra[0]}: the {name} scheduler takes {', '.join(defaults)}")
    out = {"name": name, **defaults, **{k: v for k, v in table.items() if k != "name"}}
    if name == "asha":
        eta = out["eta"]
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise GridError(f"scheduler.eta = {eta!r}: a whole number >= 2 (keep the top 1/eta of each rung)")
        _whole("scheduler.min_epochs", out["min_epochs"], 1)
    else:
        _whole("scheduler.n_startup_trials", out["n_startup_trials"], 0)
        _whole("scheduler.n_warmup_steps", out["n_warmup_steps"], 0)
    return out


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


def _check_values(key: str, values, fixed: dict, where: str | None = None) -> None:
    where = where or f"sweep.{key}"
    if not isinstance(values, list):
        raise GridError(f"{where} = {values!r}: a list of values to try; one value goes under [fixed]")
    if not values:
        raise GridError(f"{where} is an empty list: give at least one value")
    if key in LIST_KEYS and not all(isinstance(v, list) for v in values):
        raise GridError(
            f"{where} = {canonical(values)}: each value is a whole list, so sweep a list of lists "
            f"like [[8, 16], [16, 32]]; one {key} for every trial goes under [fixed]"
        )
    seen = set()
    for i, v in enumerate(values):
        try:
            validate_recipe({**fixed, key: v})
            text = canonical(v)
        except ValueError as e:
            raise GridError(f"{where}[{i}]: {e}") from None
        if text in seen:
            raise GridError(f"{where} lists {text} twice")
        seen.add(text)


def select(
    grid: Grid, random_n: int | None = None, seed: int = 0, max_trials: int = MAX_TRIALS, samples: int | None = None
) -> list[Trial]:
    """The trials to run: the whole product, or `random_n` points sampled with `seed`; with a
    [space], `samples` draws of it (seeded by `seed`), each at every point of the product.

    Sampling is prefix-stable: with the same seed, the first N points of a larger sample are the
    N points of the smaller one, so asking for more later adds points to the same sweep.
    Trials whose checked recipes coincide (lr None and the optimizer's default) run once.
    """
    if max_trials < 1:
        raise GridError(f"--max-trials must be at least 1, got {max_trials}")
    size = grid.size
    if grid.space or samples is not None:
        return _select_space(grid, samples, seed, max_trials, random_n)
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


def _select_space(grid: Grid, samples: int | None, seed: int, max_trials: int, random_n: int | None) -> list[Trial]:
    if not grid.space:
        raise GridError("--samples draws from a [space] table, and the grid has none: add one or drop --samples")
    if samples is None:
        raise GridError("the grid has a [space]: say how many points to draw from it with --samples N")
    if random_n is not None:
        raise GridError("--random samples a grid without a [space]; with a [space], use --samples N alone")
    if samples < 1:
        raise GridError(f"--samples must be at least 1, got {samples}")
    total = samples * grid.size
    if total > max_trials:
        raise GridError(
            f"{samples} samples x {grid.size} grid point(s) = {total} trials, more than --max-trials {max_trials}"
        )
    trials, seen = [], set()
    for i in range(samples):
        drawn = sample_space(grid.space, seed, i)
        for j in range(grid.size):
            t = grid.trial(i * grid.size + j, drawn)
            if t.id not in seen:
                seen.add(t.id)
                trials.append(t)
    return trials


def sample_space(space: dict, seed: int, i: int) -> dict:
    """The i-th draw of the space with `seed`: its own generator per (seed, i), keys in sorted order,
    floats rounded to 6 significant digits (readable settings, same draw on every machine)."""
    rng = random.Random(f"cvfleet-space:{seed}:{i}")
    point = {}
    for key in sorted(space):
        d = space[key]
        if d["dist"] == "choice":
            point[key] = d["values"][rng.randrange(len(d["values"]))]
        elif d["dist"] == "int":
            point[key] = rng.randint(d["low"], d["high"])
        else:
            low, high = d["low"], d["high"]
            if d["dist"] == "uniform":
                v = rng.uniform(low, high)
            else:
                v = math.exp(rng.uniform(math.log(low), math.log(high)))
            point[key] = min(max(float(f"{v:.6g}"), low), high)
    return point
