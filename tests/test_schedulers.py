"""The two early-stopping rules as pure functions (tasks/schedulers.py), with exact answers, and
ASHA's Lua script in a real Redis taking the same decisions as its Python function."""

from __future__ import annotations

import random

import pytest

from tasks.schedulers import Verdict, asha_promotion, median_stopping


def median(value, epoch, done, mode="max", startup=2, warmup=0):
    return median_stopping(value, epoch, done, n_startup_trials=startup, n_warmup_steps=warmup, mode=mode)


def test_median_stopping_stops_a_trial_worse_than_the_median_of_the_done_trials():
    assert median(0.4, 2, [0.5, 0.6, 0.3]) == Verdict(False, 0.5, 3)
    assert median(0.55, 2, [0.5, 0.6, 0.3, 0.7]) == Verdict(True, 0.55, 4)  # even count: the mean of the middle two
    assert median(0.54, 2, [0.5, 0.6, 0.3, 0.7]) == Verdict(False, 0.55, 4)


def test_median_stopping_lets_a_trial_equal_to_the_median_go_on():
    assert median(0.5, 3, [0.5, 0.6, 0.3]) == Verdict(True, 0.5, 3)


def test_median_stopping_in_min_mode_stops_a_value_above_the_median():
    assert median(2.6, 1, [1.0, 2.0, 3.0, 4.0], mode="min") == Verdict(False, 2.5, 4)
    assert median(2.4, 1, [1.0, 2.0, 3.0, 4.0], mode="min") == Verdict(True, 2.5, 4)


def test_median_stopping_waits_for_n_startup_trials_and_at_least_one():
    assert median(0.0, 2, [0.5], startup=2) == Verdict(True, None, 1)
    assert median(0.0, 2, [0.5, 0.6], startup=2) == Verdict(False, 0.55, 2)
    assert median(0.0, 2, [], startup=0) == Verdict(True, None, 0)
    assert median(0.0, 2, [0.5], startup=0) == Verdict(False, 0.5, 1)


def test_median_stopping_never_stops_during_the_warm_up_epochs():
    assert median(0.0, 2, [0.5, 0.6, 0.7], warmup=2) == Verdict(True, None, 3)
    assert median(0.0, 3, [0.5, 0.6, 0.7], warmup=2) == Verdict(False, 0.6, 3)


def test_asha_lets_the_first_trial_at_a_rung_go_on():
    assert asha_promotion(0.1, [], eta=3, mode="max") == Verdict(True, 0.1, 1)


def test_asha_keeps_the_top_1_over_eta_of_the_rung_the_trial_included():
    # 4 values, eta 2: the top 2 go on; 0.8 is second best, 0.6 last
    assert asha_promotion(0.8, [0.9, 0.7, 0.6], eta=2, mode="max") == Verdict(True, 0.8, 4)
    assert asha_promotion(0.6, [0.9, 0.8, 0.7], eta=2, mode="max") == Verdict(False, 0.8, 4)


def test_asha_with_fewer_trials_than_eta_keeps_only_the_best():
    assert asha_promotion(0.1, [0.9], eta=3, mode="max") == Verdict(False, 0.9, 2)
    assert asha_promotion(0.95, [0.9], eta=3, mode="max") == Verdict(True, 0.95, 2)


def test_asha_counts_only_strictly_better_values_so_ties_go_on():
    assert asha_promotion(0.5, [0.5, 0.5], eta=3, mode="max") == Verdict(True, 0.5, 3)
    assert asha_promotion(0.5, [0.5, 0.5, 0.7], eta=2, mode="max") == Verdict(True, 0.5, 4)
    assert asha_promotion(0.5, [0.7, 0.8, 0.5], eta=2, mode="max") == Verdict(False, 0.7, 4)


def test_asha_in_min_mode_keeps_the_lowest():
    assert asha_promotion(0.3, [0.2, 0.4], eta=3, mode="min") == Verdict(False, 0.2, 3)
    assert asha_promotion(0.3, [0.2, 0.4, 0.5, 0.6, 0.7], eta=3, mode="min") == Verdict(True, 0.3, 6)


GROWING = [round(random.Random(7).uniform(0, 1), 2) for _ in range(30)]
RUNGS = {
    "ties": [0.5, 0.5, 0.5, 0.4, 0.5, 0.6, 0.6, 0.5, 0.6, 0.4],
    "fewer trials than eta": [0.3, 0.7],
    "worst first": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "best first": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
    "growing": GROWING,
    "negative and repeated": [-1.5, 2.0, -1.5, 0.0, 1e-9, -1e-9, 2.0, 2.0, 0.0, -3.25],
}


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("eta", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(RUNGS))
def test_the_lua_script_and_the_python_rule_decide_every_rung_alike(bare_redis, name, eta, mode):
    """Trials reach one rung in turn; each gets the same (goes on, rung size, cutoff) from
    sweep_store.promote (the Lua script, in Redis) as from asha_promotion fed the values before it."""
    from tasks.sweep_store import promote

    sweep_id = f"{name.replace(' ', '-')}-{eta}-{mode}"
    seen = []
    for i, value in enumerate(RUNGS[name]):
        goes_on, n, cutoff = promote(sweep_id, f"t{i}", 1, value, eta, mode)
        assert Verdict(goes_on, cutoff, n) == asha_promotion(value, seen, eta=eta, mode=mode), (i, value, seen)
        seen.append(value)
    assert bare_redis.zcard(f"cvfleet:sweep:{sweep_id}:rung:1") == len(seen)
