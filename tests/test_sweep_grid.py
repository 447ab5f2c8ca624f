"""Grid specs (tasks.sweep_grid), pure: expansion, random sampling, stable ids, and every refusal."""

from __future__ import annotations

import json

import pytest

from nn.recipe import validate_recipe
from tasks.sweep_grid import GridError, parse_grid, read_grid, sample_indices, select, stable_id, trial_id


def grid(sweep, fixed=None, **data):
    return parse_grid({"data": "mnist5k", **data, "fixed": fixed or {}, "sweep": sweep})


def test_the_trials_are_the_product_of_the_swept_lists_last_key_fastest():
    g = grid({"lr": [0.01, 0.1], "batch_size": [32, 64, 128]})
    points = [t.point for t in select(g)]
    assert g.size == 6
    assert points == [{"batch_size": b, "lr": lr} for b in (32, 64, 128) for lr in (0.01, 0.1)]
    assert [t.index for t in select(g)] == [0, 1, 2, 3, 4, 5]


def test_each_trial_recipe_is_fixed_merged_over_defaults_and_checked():
    g = grid({"lr": [0.01]}, fixed={"epochs": 2, "conv": [4]})
    (t,) = select(g)
    assert t.recipe == validate_recipe({"epochs": 2, "conv": [4], "lr": 0.01})
    assert t.recipe["conv"] == [4] and t.recipe["dense"] == 128


def test_a_list_valued_key_is_one_value_under_fixed_and_a_list_of_lists_under_sweep():
    fixed = select(grid({}, fixed={"conv": [8, 16]}))
    swept = select(grid({"conv": [[8, 16], [16, 32, 64]]}))
    assert [t.recipe["conv"] for t in fixed] == [[8, 16]]
    assert [t.recipe["conv"] for t in swept] == [[8, 16], [16, 32, 64]]


def test_a_grid_without_sweep_is_one_trial():
    assert len(select(grid({}, fixed={"epochs": 1}))) == 1


def test_random_sampling_is_seeded_distinct_and_inside_the_grid():
    g = grid({"lr": [0.001, 0.01, 0.1], "dense": [32, 64, 128, 256], "batch_size": [16, 32, 64]})
    a = select(g, random_n=5, seed=7)
    assert [t.id for t in a] == [t.id for t in select(g, random_n=5, seed=7)]
    assert [t.id for t in a] != [t.id for t in select(g, random_n=5, seed=8)]
    assert len({t.id for t in a}) == 5
    full = {t.id for t in select(g)}
    assert {t.id for t in a} <= full


def test_a_larger_random_sample_extends_a_smaller_one_with_the_same_seed():
    assert sample_indices(1000, 10, 3) == sample_indices(1000, 40, 3)[:10]


def test_random_n_at_least_the_grid_size_is_the_whole_grid_in_order():
    g = grid({"lr": [0.01, 0.1]})
    assert [t.point for t in select(g, random_n=5)] == [t.point for t in select(g)]


def test_random_sampling_of_a_huge_grid_only_checks_the_sampled_points():
    g = grid(
        {"lr": [0.001 * (i + 1) for i in range(100)], "dense": list(range(1, 101)), "batch_size": list(range(1, 101))}
    )
    assert g.size == 1_000_000
    assert len(select(g, random_n=20, max_trials=20)) == 20


def test_a_trial_id_is_a_hash_of_the_whole_checked_recipe():
    assert trial_id({"lr": 0.05, "epochs": 2}) == trial_id({"epochs": 2, "lr": 0.05})
    assert trial_id({"lr": 1}) == trial_id({"lr": 1.0})
    assert trial_id({}) == trial_id({"lr": None}) == trial_id({"lr": 0.05})  # sgd's default lr
    assert trial_id({"lr": 0.05}) != trial_id({"lr": 0.06})
    assert trial_id({"lr": 0.05}) == stable_id(validate_recipe({"lr": 0.05}))
    assert len(trial_id({})) == 12


def test_trial_ids_do_not_depend_on_the_grid_they_come_from():
    small = {t.point["lr"]: t.id for t in select(grid({"lr": [0.01, 0.1]}, fixed={"epochs": 2}))}
    big = {
        (t.point["lr"], t.point["dense"]): t.id
        for t in select(grid({"lr": [0.1, 0.01], "dense": [128, 64]}, fixed={"epochs": 2}))
    }
    assert small[0.01] == big[(0.01, 128)] and small[0.1] == big[(0.1, 128)]


def test_points_with_the_same_checked_recipe_run_once():
    g = grid({"lr": [None, 0.05, 0.1]})
    assert [t.point["lr"] for t in select(g)] == [None, 0.1]


def test_the_grid_id_is_stable_under_key_order_and_changes_with_content():
    a = parse_grid({"data": "mnist5k", "sweep": {"lr": [0.1], "dense": [8]}, "fixed": {"epochs": 2}})
    b = parse_grid({"fixed": {"epochs": 2}, "sweep": {"dense": [8], "lr": [0.1]}, "data": "mnist5k"})
    assert a.id == b.id
    assert a.id != parse_grid({"data": "mnist5k", "sweep": {"lr": [0.1], "dense": [8]}, "fixed": {"epochs": 3}}).id
    assert (
        a.id
        != parse_grid(
            {"data": "mnist5k", "train_limit": 9, "sweep": {"lr": [0.1], "dense": [8]}, "fixed": {"epochs": 2}}
        ).id
    )


def test_toml_and_json_files_read_the_same(tmp_path):
    (tmp_path / "g.toml").write_text(
        'data = "mnist5k"\n[fixed]\nepochs = 2\n[sweep]\nlr = [0.01, 0.1]\nconv = [[8], [8, 16]]\n'
    )
    (tmp_path / "g.json").write_text(
        json.dumps({"data": "mnist5k", "fixed": {"epochs": 2}, "sweep": {"conv": [[8], [8, 16]], "lr": [0.01, 0.1]}})
    )
    assert parse_grid(read_grid(tmp_path / "g.toml")).id == parse_grid(read_grid(tmp_path / "g.json")).id


def test_a_relative_data_path_is_relative_to_the_grid_file(tmp_path):
    (tmp_path / "g.toml").write_text('data = "digits/train.csv"\n')
    assert read_grid(tmp_path / "g.toml")["data"] == str(tmp_path / "digits" / "train.csv")
    (tmp_path / "n.toml").write_text('data = "mnist5k"\n')
    assert read_grid(tmp_path / "n.toml")["data"] == "mnist5k"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"data": "mnist5k", "sweep": {"lrr": [0.1]}}, "unknown recipe key sweep.lrr"),
        ({"data": "mnist5k", "fixed": {"epoch": 2}}, "unknown recipe key fixed.epoch"),
        ({"data": "mnist5k", "epochs": 2}, "unknown grid key 'epochs' (recipe keys go under [fixed] or [sweep])"),
        ({"data": "mnist5k", "sweep": {"lr": []}}, "sweep.lr is an empty list"),
        ({"data": "mnist5k", "sweep": {"lr": [0.1, 0]}}, "sweep.lr[1]: recipe key 'lr' = 0.0: must be > 0"),
        ({"data": "mnist5k", "sweep": {"lr": [-0.1]}}, "sweep.lr[0]: recipe key 'lr' = -0.1: must be > 0"),
        ({"data": "mnist5k", "sweep": {"lr": [float("nan")]}}, "sweep.lr[0]: recipe key 'lr' = nan: must be finite"),
        ({"data": "mnist5k", "sweep": {"lr": [float("inf")]}}, "sweep.lr[0]: recipe key 'lr' = inf: must be finite"),
        ({"data": "mnist5k", "fixed": {"lr": 0}}, "fixed: recipe key 'lr' = 0.0: must be > 0"),
        ({"data": "mnist5k", "sweep": {"lr": 0.1}}, "sweep.lr = 0.1: a list of values to try"),
        ({"data": "mnist5k", "sweep": {"conv": [8, 16]}}, "sweep.conv = [8,16]: each value is a whole list"),
        ({"data": "mnist5k", "fixed": {"lr": 0.1}, "sweep": {"lr": [0.2]}}, "'lr' is both fixed and swept"),
        ({"data": "mnist5k", "sweep": {"lr": [0.1, 0.1]}}, "sweep.lr lists 0.1 twice"),
        ({"sweep": {"lr": [0.1]}}, "data is required"),
        ({"data": "mnist5k", "holdout": 0}, "holdout = 0: a fraction in (0, 1) or a whole count"),
        ({"data": "mnist5k", "train_limit": 0}, "train_limit = 0: a whole number >= 1"),
    ],
)
def test_an_invalid_spec_is_refused_in_one_line_naming_the_key(spec, message):
    with pytest.raises(GridError) as e:
        parse_grid(spec)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_grid_over_max_trials_is_refused_unless_sampled():
    g = grid({"lr": [0.01, 0.02, 0.03], "dense": [8, 16]})
    with pytest.raises(GridError, match=r"^the grid has 6 trials, more than --max-trials 5: sample some"):
        select(g, max_trials=5)
    assert len(select(g, random_n=5, max_trials=5)) == 5
    with pytest.raises(GridError, match=r"^--random 6 is more than --max-trials 5"):
        select(g, random_n=6, max_trials=5)


def test_unreadable_grid_files_are_refused_in_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("[sweep\nlr = 1\n")
    with pytest.raises(GridError, match=r"bad.toml: not valid TOML: "):
        read_grid(tmp_path / "bad.toml")
    with pytest.raises(GridError, match=r"missing.toml: no such grid file$"):
        read_grid(tmp_path / "missing.toml")


SPACE = {
    "lr": {"dist": "loguniform", "low": 1e-3, "high": 0.3},
    "momentum": {"dist": "uniform", "low": 0.5, "high": 0.95},
    "dense": {"dist": "int", "low": 16, "high": 64},
    "optimizer": {"dist": "choice", "values": ["sgd", "adam"]},
}


def test_space_samples_are_seeded_inside_their_ranges_and_a_larger_sample_extends_a_smaller_one():
    g = parse_grid({"data": "mnist5k", "space": SPACE})
    a = select(g, samples=20, seed=4)
    assert [t.point for t in a] == [t.point for t in select(g, samples=20, seed=4)]
    assert [t.point for t in a] != [t.point for t in select(g, samples=20, seed=5)]
    assert [t.point for t in select(g, samples=8, seed=4)] == [t.point for t in a[:8]]
    for t in a:
        p = t.point
        assert 1e-3 <= p["lr"] <= 0.3 and 0.5 <= p["momentum"] <= 0.95
        assert isinstance(p["dense"], int) and 16 <= p["dense"] <= 64
        assert p["optimizer"] in ("sgd", "adam")
        assert t.recipe["lr"] == p["lr"] and t.recipe["dense"] == p["dense"]
    assert {t.point["optimizer"] for t in a} == {"sgd", "adam"}


def test_loguniform_draws_spread_evenly_over_the_decades():
    g = parse_grid({"data": "mnist5k", "space": {"lr": {"dist": "loguniform", "low": 1e-4, "high": 1.0}}})
    lrs = [t.point["lr"] for t in select(g, samples=400, seed=0)]
    per_decade = [sum(10.0**k <= lr < 10.0 ** (k + 1) for lr in lrs) for k in (-4, -3, -2, -1)]
    assert all(70 <= n <= 130 for n in per_decade), per_decade


def test_a_grid_and_a_space_combine_each_sample_runs_at_every_grid_point():
    g = parse_grid(
        {"data": "mnist5k", "sweep": {"batch_size": [32, 64]}, "space": {"lr": SPACE["lr"]}, "fixed": {"epochs": 2}}
    )
    trials = select(g, samples=3, seed=1)
    assert len(trials) == 6 and len({t.id for t in trials}) == 6
    assert [t.point["batch_size"] for t in trials] == [32, 64] * 3
    lrs = [t.point["lr"] for t in trials]
    assert lrs[0] == lrs[1] and lrs[2] == lrs[3] and lrs[4] == lrs[5] and len(set(lrs)) == 3
    assert [t.index for t in trials] == list(range(6))


def test_metric_and_mode_default_to_validation_accuracy_maximised_and_follow_the_metric():
    assert (grid({}).metric, grid({}).mode) == ("val_accuracy", "max")
    g = parse_grid({"data": "mnist5k", "metric": "val_loss"})
    assert (g.metric, g.mode) == ("val_loss", "min")
    assert parse_grid({"data": "mnist5k", "metric": "val_loss", "mode": "max"}).mode == "max"


def test_scheduler_settings_are_filled_in_and_change_the_grid_id_only_when_given():
    plain = grid({"lr": [0.1]})
    assert plain.scheduler == {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
    assert plain.id == grid({"lr": [0.1]}, fixed=None).id
    assert plain.id == stable_id({"data": plain.data, "fixed": {}, "sweep": {"lr": [0.1]}})  # ids of old grids hold
    asha = parse_grid({"data": "mnist5k", "sweep": {"lr": [0.1]}, "scheduler": {"name": "asha"}})
    assert asha.scheduler == {"name": "asha", "eta": 3, "min_epochs": 1}
    assert asha.id != plain.id
    median = parse_grid(
        {"data": "mnist5k", "sweep": {"lr": [0.1]}, "scheduler": {"n_startup_trials": 5, "n_warmup_steps": 1}}
    )
    assert median.scheduler == {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 1}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"space": {"lr": {"dist": "uniform", "low": 0.3, "high": 0.1}}}, "space.lr: low = 0.3 must be below high"),
        ({"space": {"lr": {"dist": "uniform", "low": 0.1, "high": 0.1}}}, "space.lr: low = 0.1 must be below high"),
        ({"space": {"lr": {"dist": "loguniform", "low": 0, "high": 0.1}}}, "space.lr: loguniform needs low > 0, got 0"),
        (
            {"space": {"momentum": {"dist": "loguniform", "low": -0.5, "high": 0.9}}},
            "space.momentum: loguniform needs low > 0",
        ),
        ({"space": {"lr": {"dist": "normal", "low": 0, "high": 1}}}, "space.lr: unknown distribution 'normal'; one of"),
        ({"space": {"lr": 0.1}}, "space.lr = 0.1: a distribution such as"),
        ({"space": {"dense": {"dist": "int", "low": 8.5, "high": 64}}}, "space.dense.low = 8.5: a whole number"),
        ({"space": {"lr": {"dist": "uniform", "low": 0, "high": 0.1}}}, "space.lr: recipe key 'lr' = 0.0: must be > 0"),
        ({"space": {"lrr": {"dist": "uniform", "low": 0.1, "high": 0.2}}}, "unknown recipe key space.lrr"),
        ({"space": {"optimizer": {"dist": "choice", "values": []}}}, "space.optimizer.values is an empty list"),
        (
            {"sweep": {"lr": [0.1]}, "space": {"lr": {"dist": "uniform", "low": 0.1, "high": 0.2}}},
            "'lr' is both in [space] and in [sweep]",
        ),
        ({"scheduler": {"name": "asha", "eta": 1}}, "scheduler.eta = 1: a whole number >= 2"),
        ({"scheduler": {"name": "asha", "eta": 1.5}}, "scheduler.eta = 1.5: a whole number >= 2"),
        ({"scheduler": {"name": "hyperband"}}, "scheduler.name = 'hyperband': one of median, asha"),
        ({"scheduler": {"name": "median", "eta": 3}}, "scheduler.eta: the median scheduler takes n_startup_trials"),
        ({"scheduler": {"n_warmup_steps": -1}}, "scheduler.n_warmup_steps = -1: a whole number >= 0"),
        ({"metric": "f1"}, "metric = 'f1' is not recorded; a trial records val_accuracy, val_loss, accuracy, loss"),
        ({"mode": "maximize"}, "mode = 'maximize': min or max"),
    ],
)
def test_an_invalid_space_objective_or_scheduler_is_refused_in_one_line(extra, message):
    with pytest.raises(GridError) as e:
        parse_grid({"data": "mnist5k", **extra})
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_samples_need_a_space_and_a_space_needs_samples():
    with pytest.raises(GridError, match=r"^--samples draws from a \[space\] table"):
        select(grid({"lr": [0.1]}), samples=4)
    g = parse_grid({"data": "mnist5k", "space": SPACE})
    with pytest.raises(GridError, match=r"^the grid has a \[space\]: say how many points"):
        select(g)
    with pytest.raises(GridError, match=r"^5 samples x 1 grid point\(s\) = 5 trials, more than --max-trials 4"):
        select(g, samples=5, max_trials=4)
