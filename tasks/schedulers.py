"""What stops a trial early: median stopping or ASHA, asked after every epoch a trial records.

Median stopping (Optuna's MedianPruner): after epoch k, a trial whose metric is worse than the
median of the *done* trials' metric after epoch k stops, recorded pruned. Nothing is pruned until
n_startup_trials trials are done (counted at that epoch), nor at epochs <= n_warmup_steps, nor at
the trial's last epoch.

ASHA, asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning"): rungs at epochs r, r·eta, r·eta², ... below the trial's last epoch (r =
min_epochs). At a rung, a trial goes on when it is in the top 1/eta of the values that rung has seen
so far, itself included, and stops otherwise. No trial waits for a rung to fill, which is what fits
a queue of independent Celery tasks: the first trials to reach a rung go on easily, later ones
face a fuller rung. A rung is a zset in Redis and each decision is made once, atomically, by a Lua
script (`sweep_store.promote`), so two workers reaching a rung together cannot both take the last
place, and a trial resumed after a crash gets the answer it had. The rule at a rung of n values is
Optuna's SuccessiveHalvingPruner's: go on when fewer than max(1, floor(n / eta)) values are strictly
better.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks import sweep_store


@dataclass
class Stop:
    """Why a trial stops: at `epoch`, its `value` against `threshold` (the median, or the worst value
    in the top 1/eta), with `among` values compared (ASHA)."""

    epoch: int
    value: float
    threshold: float
    among: int | None = None


def worse(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "max" else a > b


def asha_rungs(min_epochs: int, eta: int, epochs: int) -> list[int]:
    """The rung epochs below `epochs`: min_epochs · eta^k."""
    rungs, r = [], min_epochs
    while r < epochs:
        rungs.append(r)
        r *= eta
    return rungs


class Scheduler:
    """Asked after each recorded epoch of one trial; returns a Stop or None."""

    def __init__(self, sweep_id: str, trial_id: str, epochs: int, metric: str, mode: str, settings: dict):
        self.sweep_id, self.trial_id, self.epochs = sweep_id, trial_id, epochs
        self.metric, self.mode, self.settings = metric, mode, settings

    def after_epoch(self, epoch: int, metrics: dict) -> Stop | None:
        value = metrics.get(self.metric)
        if value is None or epoch >= self.epochs:
            return None
        if self.settings["name"] == "asha":
            return self._asha(epoch, value)
        return self._median(epoch, value)

    def _median(self, epoch: int, value: float) -> Stop | None:
        if epoch <= self.settings["n_warmup_steps"]:
            return None
        median = sweep_store.median_at(self.sweep_id, epoch, self.settings["n_startup_trials"])
        if median is not None and worse(value, median, self.mode):
            return Stop(epoch, value, median)
        return None

    def _asha(self, epoch: int, value: float) -> Stop | None:
        eta = self.settings["eta"]
        if epoch not in asha_rungs(self.settings["min_epochs"], eta, self.epochs):
            return None
        goes_on, n, cutoff = sweep_store.promote(self.sweep_id, self.trial_id, epoch, value, eta, self.mode)
        return None if goes_on else Stop(epoch, value, cutoff, n)
