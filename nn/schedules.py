"""Learning-rate schedules: the factor the base learning rate is multiplied by at each step.

A schedule is a function of the step t (0, 1, ... total - 1, counted in mini-batches over the
whole training) returning a factor in (0, 1]; an optimizer takes lr_t = lr · factor(t).
Knowing the total number of steps in advance is what lets cosine and one-cycle end low.

    constant   1
    step       1, then 0.1 from half of the steps, 0.01 from three quarters (the classic
               "divide by 10 twice" of ResNet training, at fixed fractions of the run)
    cosine     ½ (1 + cos(π t / total)): from 1 down towards 0, slowly at both ends
    onecycle   Smith's one-cycle as PyTorch's OneCycleLR (defaults): up from 1/25 to 1 over the
               first 30 % of the steps, then down to 1/25/10⁴ of it, both along half a cosine.
               A short warm-up lets a high peak rate (fast progress, some regularisation) be
               used without diverging, and the long descent ends on a rate small enough to settle.
"""

import math

SCHEDULES = ("constant", "step", "cosine", "onecycle")

ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def _cosine(start: float, end: float, fraction: float) -> float:
    """From start (fraction 0) to end (fraction 1) along half a cosine."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def lr_factor(name: str, t: int, total: int) -> float:
    """The factor of schedule `name` at step t of `total` steps (t past the end: the last one)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {name!r}")
    if total < 1:
        raise ValueError(f"a schedule needs at least one step, got total = {total}")
    t = min(max(int(t), 0), total - 1)
    if name == "constant":
        return 1.0
    if name == "step":
        return 0.01 if t >= 0.75 * total else 0.1 if t >= 0.5 * total else 1.0
    if name == "cosine":
        return _cosine(1.0, 0.0, t / total)
    # onecycle, with PyTorch's phase ends: the peak at step pct·total - 1, the floor at the last step
    low, floor = 1.0 / ONECYCLE_DIV, 1.0 / ONECYCLE_DIV / ONECYCLE_FINAL_DIV
    peak = float(ONECYCLE_PCT_START * total) - 1.0
    if t <= peak:
        return _cosine(low, 1.0, t / peak) if peak > 0 else 1.0
    return _cosine(1.0, floor, (t - peak) / (total - 1 - peak)) if total - 1 > peak else floor


class LRSchedule:
    """Schedule `name` over `total` steps, as a callable step -> factor (what Optimizer takes)."""

    def __init__(self, name: str = "constant", total: int = 1):
        lr_factor(name, 0, total)  # validates
        self.name, self.total = name, int(total)

    def __call__(self, t: int) -> float:
        return lr_factor(self.name, t, self.total)

    def __repr__(self) -> str:
        return f"LRSchedule({self.name!r}, total={self.total})"
