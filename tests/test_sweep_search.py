"""Search beyond the grid through the real fleet: a sampled [space], a chosen metric and direction,
ASHA's rungs in Redis, the median rule's startup and warm-up, and every bad setting refused before
anything reaches Redis."""

from __future__ import annotations

import pytest

from support.cli import cvfleet_here
from support.fleet import cvfleet
from support.sweep import error_line, sweep_keys, write_grid

pytestmark = pytest.mark.fleet

ASHA = """metric = "val_loss"
[fixed]
epochs = 4
batch_size = 64
seed = 2
[space]
lr = { dist = "loguniform", low = 1e-4, high = 0.3 }
dense = { dist = "int", low = 16, high = 64 }
[scheduler]
name = "asha"
eta = 2
"""


@pytest.fixture(scope="module")
def asha(fleet, tmp_path_factory):
    """10 sampled trials of 4 epochs under ASHA (eta 2: rungs at epochs 1 and 2), ranked by val_loss."""
    grid = write_grid(tmp_path_factory.mktemp("asha") / "asha.toml", ASHA)
    run = cvfleet("sweep", str(grid), "--samples", "10", "--seed", "3")
    assert run.returncode == 0, run.stderr + run.stdout
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    g = parse_grid(read_grid(grid))
    return g, run, {t["id"]: t for t in sweep_store.trials(g.id, with_epochs=True)}


def test_the_sampled_trials_are_the_seeded_draws_of_the_space(asha):
    from tasks.sweep_grid import select

    g, _, trials = asha
    assert sorted(trials) == sorted(t.id for t in select(g, samples=10, seed=3))
    assert all(1e-4 <= t["recipe"]["lr"] <= 0.3 and 16 <= t["recipe"]["dense"] <= 64 for t in trials.values())


def test_asha_stops_trials_only_at_rungs_and_lets_the_others_finish(asha):
    _, _, trials = asha
    states = [t["state"] for t in trials.values()]
    assert set(states) <= {"done", "pruned"} and "pruned" in states and "done" in states
    for t in trials.values():
        epochs = [e["epoch"] for e in t["history"]]
        if t["state"] == "pruned":
            assert t["pruned_at"] in (1, 2) and epochs == list(range(1, t["pruned_at"] + 1))
            assert t["scheduler"] == "asha" and t["rung_size"] >= 1
        else:
            assert epochs == [1, 2, 3, 4]


def test_each_rung_decision_follows_the_top_1_over_eta_rule_of_the_rung_as_it_was(asha):
    """Rebuild every rung in the order trials reached it (the rung size each decision saw) and check
    the rule: go on when fewer than max(1, n // eta) earlier-or-same values are strictly better
    (lower val_loss)."""
    from tasks.store import client
    from tasks.sweep_store import sweep_key

    g, _, trials = asha
    for epoch in (1, 2):
        values = dict(client().zrange(sweep_key(g.id, "rung", epoch), 0, -1, withscores=True))
        decided = client().hgetall(sweep_key(g.id, "rung", epoch, "decided"))
        assert set(values) == set(decided) == {tid for tid, t in trials.items() if len(t["history"]) >= epoch}
        order = sorted(decided, key=lambda tid: int(decided[tid].split()[1]))
        assert [int(decided[tid].split()[1]) for tid in order] == list(range(1, len(order) + 1))
        for n, tid in enumerate(order, 1):
            seen = [values[o] for o in order[:n]]
            goes_on = sum(v < values[tid] for v in seen) < max(1, n // 2)
            assert decided[tid].split()[0] == ("promote" if goes_on else "stop")
            assert values[tid] == trials[tid]["history"][epoch - 1]["val_loss"]
            assert (trials[tid]["state"] == "pruned" and trials[tid]["pruned_at"] == epoch) == (not goes_on)


def test_the_leaderboard_ranks_by_the_chosen_metric_in_its_direction(asha):
    from tasks import sweep_store

    g, run, trials = asha
    board = sweep_store.leaderboard(g.id)
    done = {tid for tid, t in trials.items() if t["state"] == "done"}
    assert {tid for tid, _ in board} == done
    assert [s for _, s in board] == sorted(trials[tid]["val_loss"] for tid in done)
    assert all(score == trials[tid]["score"] == trials[tid]["val_loss"] for tid, score in board)
    assert "; ranked by val_loss (min)" in run.stdout.splitlines()[0]
    assert "ASHA eta 2 (rungs at epochs 1, 2), ranked by val_loss (min)" in run.stderr.splitlines()[0]


def test_the_replay_benchmark_decides_each_rung_as_the_fleet_did(asha):
    """benchmarks/replay_search.py replays ASHA's rule in Python; fed the fleet's trials in the order
    they reached each rung, it takes the decisions the Lua script took."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from replay_search import asha_rule

    from tasks.store import client
    from tasks.sweep_store import sweep_key

    g, _, trials = asha
    decide = asha_rule(g.spec["scheduler"], 4, mode="min")
    decisions = 0
    for epoch in (1, 2):
        decided = client().hgetall(sweep_key(g.id, "rung", epoch, "decided"))
        for tid in sorted(decided, key=lambda tid: int(decided[tid].split()[1])):
            value = trials[tid]["history"][epoch - 1]["val_loss"]
            assert decide(tid, epoch, value, []) == (decided[tid].split()[0] == "promote")
            decisions += 1
    assert decisions > 10  # both rungs were replayed


def test_n_warmup_steps_keeps_a_hopeless_trial_from_being_pruned_early(fleet, tmp_path):
    grid = write_grid(
        tmp_path / "warmup.toml",
        "[fixed]\nepochs = 3\nseed = 8\n[sweep]\nlr = [0.05, 0.04, 0.03, 1e-6]\n[scheduler]\nn_warmup_steps = 2\n",
    )
    run = cvfleet("sweep", str(grid))
    assert run.returncode == 0, run.stderr
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    assert [t["state"] for t in sweep_store.trials(parse_grid(read_grid(grid)).id)] == ["done"] * 4


def test_n_startup_trials_waits_for_that_many_done_trials(fleet, tmp_path):
    grid = write_grid(
        tmp_path / "startup.toml",
        "[fixed]\nepochs = 3\nseed = 9\n[sweep]\nlr = [0.05, 0.04, 0.03, 1e-6]\n[scheduler]\nn_startup_trials = 4\n",
    )
    run = cvfleet("sweep", str(grid))
    assert run.returncode == 0, run.stderr
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    assert [t["state"] for t in sweep_store.trials(parse_grid(read_grid(grid)).id)] == ["done"] * 4


@pytest.mark.parametrize(
    "body, args, message",
    [
        (
            '[space]\nlr = { dist = "uniform", low = 0.2, high = 0.1 }\n',
            ("--samples", "2"),
            "space.lr: low = 0.2 must be below high = 0.1",
        ),
        (
            '[space]\nlr = { dist = "loguniform", low = 0.0, high = 0.1 }\n',
            ("--samples", "2"),
            "space.lr: loguniform needs low > 0, got 0.0",
        ),
        (
            '[space]\nlr = { dist = "gaussian", low = 0.01, high = 0.1 }\n',
            ("--samples", "2"),
            "space.lr: unknown distribution 'gaussian'; one of uniform, loguniform, int, choice",
        ),
        (
            '[sweep]\nlr = [0.1]\n[scheduler]\nname = "asha"\neta = 1\n',
            (),
            "scheduler.eta = 1: a whole number >= 2 (keep the top 1/eta of each rung)",
        ),
        (
            'metric = "val_f1"\n[sweep]\nlr = [0.1]\n',
            (),
            "metric = 'val_f1' is not recorded; a trial records val_accuracy, val_loss, accuracy, loss per epoch",
        ),
        ('mode = "maximum"\n[sweep]\nlr = [0.1]\n', (), "mode = 'maximum': min or max"),
        (
            '[space]\nlr = { dist = "uniform", low = 0.01, high = 0.1 }\n',
            (),
            "the grid has a [space]: say how many points to draw from it with --samples N",
        ),
    ],
)
def test_a_bad_space_scheduler_or_metric_is_refused_in_one_line_and_nothing_reaches_redis(
    fleet, tmp_path, body, args, message
):
    grid = write_grid(tmp_path / "bad.toml", body)
    before = sweep_keys()
    run = cvfleet_here("sweep", str(grid), *args)
    assert run.returncode == 1
    assert error_line(run) == message
    assert run.stdout == ""
    assert sweep_keys() == before
