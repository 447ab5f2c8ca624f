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
