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

Each rule is one pure function here, `median_stopping` and `asha_promotion`: the values in, the
decision and the numbers it used out, no Redis. The fleet's `Scheduler` feeds them what Redis holds,
benchmarks/replay_search.py what its replay holds. The Lua script restates `asha_promotion` so that
Redis decides it atomically; tests/test_schedulers.py holds the two to the same answers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import NamedTuple

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


class Verdict(NamedTuple):
    """A rule's answer after one epoch: whether the trial goes on, the value it was held to (the
    median, or the worst value in the top 1/eta; None while the median rule waits), among how many."""

    goes_on: bool
    threshold: float | None
    among: int


def median_stopping(
    value: float, epoch: int, done: list[float], *, n_startup_trials: int, n_warmup_steps: int, mode: str
) -> Verdict:
    """Median stopping after `epoch`, `done` being the done trials' metric after that epoch: stop when
    `value` is worse than their median, once max(1, n_startup_trials) are done and past the warm-up."""
    if epoch <= n_warmup_steps or len(done) < max(1, n_startup_trials):
        return Verdict(True, None, len(done))
    median = statistics.median(done)
    return Verdict(not worse(value, median, mode), median, len(done))


def asha_promotion(value: float, rung: list[float], *, eta: int, mode: str) -> Verdict:
    """ASHA at one rung, `rung` being the values of the trials that reached it before this one: the
    value joins them, and goes on when fewer than max(1, n // eta) of the n values are strictly better."""
    values = [*rung, value]
    k = max(1, len(values) // eta)
    better = sum(1 for v in values if worse(value, v, mode))
    cutoff = sorted(values, reverse=mode == "max")[k - 1]
    return Verdict(better < k, cutoff, len(values))


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
        verdict = median_stopping(
            value,
            epoch,
            sweep_store.epoch_values(self.sweep_id, epoch),
            n_startup_trials=self.settings["n_startup_trials"],
            n_warmup_steps=self.settings["n_warmup_steps"],
            mode=self.mode,
        )
        return None if verdict.goes_on else Stop(epoch, value, verdict.threshold)

    def _asha(self, epoch: int, value: float) -> Stop | None:
        eta = self.settings["eta"]
        if epoch not in asha_rungs(self.settings["min_epochs"], eta, self.epochs):
            return None
        goes_on, n, cutoff = sweep_store.promote(self.sweep_id, self.trial_id, epoch, value, eta, self.mode)
        return None if goes_on else Stop(epoch, value, cutoff, n)
