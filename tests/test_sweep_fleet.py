"""Sweeps through the real fleet (real Redis, 2 real worker processes): results, resume, failures,
pruning, refusals, and one record per grid point whatever happens to a trial's task."""

from __future__ import annotations

import csv
import json

import pytest

from support.cli import cvfleet_here
from support.fleet import cvfleet, wait_for
from support.sweep import error_line, sweep_keys, write_grid

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def four(fleet, tmp_path_factory):
    """A 4-trial sweep (2 learning rates × 2 batch sizes, 2 epochs), no pruning, followed to its end."""
    grid = write_grid(
        tmp_path_factory.mktemp("grid") / "four.toml",
        "[fixed]\nepochs = 2\n[sweep]\nlr = [0.02, 0.05]\nbatch_size = [32, 64]\n",
    )
    run = cvfleet("sweep", str(grid), "--no-prune")
    assert run.returncode == 0, run.stderr + run.stdout
    from tasks.sweep_grid import parse_grid, read_grid

    return parse_grid(read_grid(grid)), grid, run


def trials_by_id(sweep_id):
    from tasks import sweep_store

    return {t["id"]: t for t in sweep_store.trials(sweep_id, with_epochs=True)}


def test_a_sweep_ends_with_one_leaderboard_entry_per_trial(four):
    from tasks import sweep_store
    from tasks.sweep_grid import select

    g, _, _ = four
    board = sweep_store.leaderboard(g.id)
    assert sorted(tid for tid, _ in board) == sorted(t.id for t in select(g))
    assert [s for _, s in board] == sorted((s for _, s in board), reverse=True)
    assert all(t["state"] == "done" for t in trials_by_id(g.id).values())


def test_leaderboard_metrics_are_those_the_trial_recorded_per_epoch(four):
    from tasks import sweep_store

    g, _, _ = four
    trials = trials_by_id(g.id)
    for tid, score in sweep_store.leaderboard(g.id):
        t = trials[tid]
        history = t["history"]
        assert [e["epoch"] for e in history] == [1, 2]
        assert score == t["val_accuracy"] == history[-1]["val_accuracy"]
        assert t["best_val_accuracy"] == max(e["val_accuracy"] for e in history)
        assert (t["loss"], t["val_loss"], t["accuracy"]) == (
            history[-1]["loss"],
            history[-1]["val_loss"],
            history[-1]["accuracy"],
        )
        assert t["epochs"] == 2
        assert t["seconds"] == pytest.approx(sum(e["seconds"] for e in history), abs=1e-3)


def test_the_leaderboard_printed_at_the_end_matches_redis(four):
    from tasks import sweep_store

    g, _, run = four
    lines = run.stdout.splitlines()
    assert lines[0] == (
        f"sweep {g.id} finished: 4 trials, 4 done, 0 pruned, 0 failed; data mnist5k (holdout 0.2, train 500, val 200)"
    )
    assert lines[1].split() == [
        "rank",
        "trial",
        "val_acc",
        "best",
        "val_loss",
        "epochs",
        "seconds",
        "worker",
        "batch_size",
        "lr",
    ]
    printed = [(row.split()[1], row.split()[2]) for row in lines[2:6]]
    assert printed == [(tid, f"{s:.4f}") for tid, s in sweep_store.leaderboard(g.id)]


def test_each_trial_ran_with_one_blas_thread_on_a_fleet_worker(four):
    g, _, _ = four
    for t in trials_by_id(g.id).values():
        assert t["blas_threads"] == 1
        assert t["worker"].startswith("fleet@")


def test_saved_weights_reproduce_the_recorded_validation_accuracy(four):
    from nn.serialize import model_from_files
    from tasks import sweep_store
    from tasks.trial_data import load_splits

    g, _, _ = four
    _, val = load_splits(json.dumps(g.data, sort_keys=True))
    for t in trials_by_id(g.id).values():
        assert t["weights"] == f"redis:cvfleet:sweep:{g.id}:trial:{t['id']}:weights"  # the default storage
        _, accuracy = model_from_files(sweep_store.weights(g.id, t["id"])).evaluate(val.x, val.y)
        assert accuracy == t["val_accuracy"]


def test_best_prints_the_top_trial_and_a_loadable_weights_path(four):
    from nn import load_model
    from tasks import sweep_store
    from workers import config

    g, _, _ = four
    run = cvfleet_here("sweep", "best", g.id[:6])
    assert run.returncode == 0, run.stderr
    top, score = sweep_store.leaderboard(g.id)[0]
    assert run.stdout.splitlines()[0].startswith(f"best trial {top}: val_acc {score:.4f} after 2 epoch(s)")
    weights = next(line.split(None, 1)[1] for line in run.stdout.splitlines() if line.startswith("weights:"))
    assert weights == str(config.load().data / "sweeps" / g.id / top)  # written here out of Redis
    assert load_model(weights).input_shape == (1, 28, 28)
    assert f"evaluate: cvfleet evaluate --model {weights} --data mnist5k --holdout 0.2 --split-seed 0" in run.stdout


def test_resubmitting_the_same_grid_runs_nothing_new(four):
    g, grid, _ = four
    before = trials_by_id(g.id)
    run = cvfleet("sweep", str(grid), "--no-prune")
    assert run.returncode == 0, run.stderr
    assert f"sweep {g.id}: 0 trial(s) queued, 4 already finished" in run.stderr
    after = trials_by_id(g.id)
    assert {tid: (t["task_id"], t["started"], t["finished"]) for tid, t in after.items()} == {
        tid: (t["task_id"], t["started"], t["finished"]) for tid, t in before.items()
    }


def test_a_redelivered_task_of_a_finished_trial_writes_nothing(four):
    from tasks.trial import train_trial

    g, _, _ = four
    before = trials_by_id(g.id)
    tid, t = next(iter(before.items()))
    train_trial.AsyncResult(t["task_id"]).forget()  # so .get() waits for this run, not the first one's result
    result = train_trial.apply_async(kwargs={"sweep_id": g.id, "trial_id": tid}, task_id=t["task_id"]).get(timeout=60)
    assert result == {"state": "final"}
    assert trials_by_id(g.id)[tid] == t


def test_a_superseded_task_of_a_trial_writes_nothing(fleet):
    """A resubmission queues a trial under a new task id; a task with an older id does nothing."""
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, select
    from tasks.trial import train_trial

    g = parse_grid({"data": "mnist5k", "train_limit": 500, "val_limit": 200, "fixed": {"epochs": 1, "seed": 78}})
    (trial,) = select(g)
    sweep_store.record_sweep(g.id, {"data": g.data, "fixed": g.fixed, "sweep": g.sweep}, True, [])
    assert sweep_store.queue_trial(g.id, trial, "newer-task")
    assert train_trial.apply_async(kwargs={"sweep_id": g.id, "trial_id": trial.id}, task_id="older-task").get(
        timeout=60
    ) == {"state": "stale"}
    (t,) = sweep_store.trials(g.id, with_epochs=True)
    assert (t["state"], t["task_id"], t["history"], t.get("started")) == ("queued", "newer-task", [], None)
    sweep_store.delete(g.id)


def test_export_writes_one_csv_row_per_trial(four, tmp_path):
    from tasks import sweep_store

    g, _, _ = four
    out = tmp_path / "trials.csv"
    run = cvfleet_here("sweep", "export", g.id, "--csv", str(out))
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["trial"] for r in rows) == sorted(trials_by_id(g.id))
    ranks = {r["trial"]: (int(r["rank"]), float(r["val_accuracy"])) for r in rows}
    assert sorted(ranks.values(), key=lambda v: v[0]) == [
        (i, s) for i, (_, s) in enumerate(sweep_store.leaderboard(g.id), 1)
    ]
    assert {r["lr"] for r in rows} == {"0.02", "0.05"} and {r["batch_size"] for r in rows} == {"32", "64"}


def test_plot_draws_every_trial_curve_to_a_png(four, tmp_path):
    g, _, _ = four
    out = tmp_path / "curves.png"
    run = cvfleet_here("sweep", "plot", g.id, "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"wrote {out} (4 curves)"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_list_shows_the_sweep(four):
    g, _, _ = four
    run = cvfleet_here("sweep", "list")
    line = next(line for line in run.stdout.splitlines() if line.startswith(g.id))
    assert line.split()[1:4] == ["finished", "4", "trials:"]


def test_a_trial_that_raises_is_recorded_failed_while_the_others_finish(fleet, tmp_path):
    # conv [8,16,32,64] passes grid checks but leaves no pixels for its 4th conv on 28x28 images
    grid = write_grid(tmp_path / "fails.toml", "[fixed]\nepochs = 1\n[sweep]\nconv = [[8, 16], [8, 16, 32, 64]]\n")
    run = cvfleet("sweep", str(grid), "--no-prune")
    assert run.returncode == 1
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    g = parse_grid(read_grid(grid))
    states = {json.dumps(t["recipe"]["conv"]): t for t in sweep_store.trials(g.id)}
    assert states["[8, 16]"]["state"] == "done"
    failed = states["[8, 16, 32, 64]"]
    assert failed["state"] == "failed"
    from nn.recipe import build_model

    with pytest.raises(ValueError) as raised:  # the same recipe, built here, raises the recorded error
        build_model(failed["recipe"], input_shape=(1, 28, 28))
    assert failed["error"] == f"ValueError: {raised.value}"
    assert [tid for tid, _ in sweep_store.leaderboard(g.id)] == [states["[8, 16]"]["id"]]
    assert f"failed  {failed['id']}  {failed['error']}  conv=[8,16,32,64]" in run.stdout

    again = cvfleet("sweep", str(grid), "--no-prune")  # failed trials run again, done ones do not
    assert again.returncode == 1
    assert f"sweep {g.id}: 1 trial(s) queued, 1 already finished" in again.stderr
    rerun = {json.dumps(t["recipe"]["conv"]): t for t in sweep_store.trials(g.id)}
    assert rerun["[8, 16]"]["task_id"] == states["[8, 16]"]["task_id"]
    assert rerun["[8, 16, 32, 64]"]["task_id"] != failed["task_id"]
    assert rerun["[8, 16, 32, 64]"]["state"] == "failed"


def test_a_trial_whose_worker_died_three_times_is_recorded_failed(fleet):
    from tasks import sweep_store
    from tasks.store import client, key
    from tasks.sweep_grid import parse_grid, select
    from tasks.trial import train_trial

    g = parse_grid({"data": "mnist5k", "train_limit": 500, "val_limit": 200, "fixed": {"epochs": 1, "seed": 77}})
    (trial,) = select(g)
    sweep_store.record_sweep(g.id, {"data": g.data, "fixed": g.fixed, "sweep": g.sweep}, True, [])
    task_id = f"{g.id}-{trial.id}-killer"
    assert sweep_store.queue_trial(g.id, trial, task_id)
    client().set(key("attempts", task_id), 3)  # as if it had killed its worker three times
    assert train_trial.apply_async(kwargs={"sweep_id": g.id, "trial_id": trial.id}, task_id=task_id).get(
        timeout=60
    ) == {"state": "failed"}
    (t,) = sweep_store.trials(g.id)
    assert (t["state"], t["error"]) == ("failed", "a worker died on this trial 3 times; it is not retried again")
    assert client().llen(sweep_store.trial_key(g.id, trial.id, "epochs")) == 0
    sweep_store.delete(g.id)


def test_pruning_stops_a_hopeless_trial(fleet, tmp_path):
    # Trials run in grid order, at most 2 at a time: the 4th (lr 1e-6, hopeless) starts only after two
    # others have ended, so the median rule has 2 finished trials to compare it with after its epoch 1.
    grid = write_grid(tmp_path / "prune.toml", "[fixed]\nepochs = 3\n[sweep]\nlr = [0.05, 0.04, 0.03, 1e-6]\n")
    run = cvfleet("sweep", str(grid))
    assert run.returncode == 0, run.stderr
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    g = parse_grid(read_grid(grid))
    hopeless = next(t for t in sweep_store.trials(g.id, with_epochs=True) if t["recipe"]["lr"] == 1e-6)
    assert hopeless["state"] == "pruned"
    assert hopeless["epochs"] == hopeless["pruned_at"] == len(hopeless["history"]) < 3
    assert hopeless["val_accuracy"] == hopeless["history"][-1]["val_accuracy"] < hopeless["median"]
    assert hopeless["id"] not in dict(sweep_store.leaderboard(g.id))
    assert (
        f"pruned  {hopeless['id']}  val_acc {hopeless['val_accuracy']:.4f} after epoch {hopeless['pruned_at']}"
        in run.stdout
    )


def test_no_prune_lets_the_hopeless_trial_finish(fleet, tmp_path):
    grid = write_grid(
        tmp_path / "noprune.toml", "[fixed]\nepochs = 2\nseed = 3\n[sweep]\nlr = [0.05, 0.04, 0.03, 1e-6]\n"
    )
    run = cvfleet("sweep", str(grid), "--no-prune")
    assert run.returncode == 0, run.stderr
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, read_grid

    g = parse_grid(read_grid(grid))
    assert [t["state"] for t in sweep_store.trials(g.id)] == ["done"] * 4


def test_delete_removes_every_key_of_the_sweep_and_of_its_tasks(fleet, tmp_path):
    grid = write_grid(tmp_path / "delete.toml", "[fixed]\nepochs = 1\nseed = 5\n[sweep]\nlr = [0.05, 0.01]\n")
    sweep_id = cvfleet_here("sweep", str(grid), "--no-wait").stdout.strip()
    assert cvfleet("sweep", "show", sweep_id, "--follow").returncode == 0
    assert any(k.startswith(f"cvfleet:sweep:{sweep_id}") for k in sweep_keys())
    run = cvfleet_here("sweep", "delete", sweep_id)
    assert run.returncode == 0, run.stderr
    from tasks.store import client, key

    assert list(client().scan_iter(match=f"*{sweep_id}*", count=1000)) == []
    assert client().zscore(key("sweeps"), sweep_id) is None


@pytest.mark.parametrize(
    "body, args, message",
    [
        ("[sweep]\nlrr = [0.1]\n", (), "unknown recipe key sweep.lrr; recipe keys: conv, "),
        ("[sweep]\nlr = []\n", (), "sweep.lr is an empty list: give at least one value"),
        ("[sweep]\nlr = [0.1, 0.0]\n", (), "sweep.lr[1]: recipe key 'lr' = 0.0: must be > 0"),
        ("[sweep]\nlr = [-0.5]\n", (), "sweep.lr[0]: recipe key 'lr' = -0.5: must be > 0"),
        ("[sweep]\nlr = [nan]\n", (), "sweep.lr[0]: recipe key 'lr' = nan: must be finite"),
        ("[sweep]\nlr = [inf]\n", (), "sweep.lr[0]: recipe key 'lr' = inf: must be finite"),
        (
            "[sweep]\nlr = [0.1, 0.2, 0.3]\ndense = [8, 16]\n",
            ("--max-trials", "5"),
            "the grid has 6 trials, more than --max-trials 5: sample some with --random N or raise --max-trials",
        ),
    ],
)
def test_an_invalid_grid_is_refused_in_one_line_and_nothing_reaches_redis(fleet, tmp_path, body, args, message):
    grid = write_grid(tmp_path / "bad.toml", body)
    before = sweep_keys()
    run = cvfleet_here("sweep", str(grid), *args)
    assert run.returncode == 1
    assert error_line(run).startswith(message)
    assert run.stdout == ""
    assert sweep_keys() == before


@pytest.mark.parametrize("data", ["missing/digits.csv", "/nowhere/train.csv", "mnist6k"])
def test_a_data_set_that_cannot_be_found_is_refused_and_nothing_reaches_redis(fleet, tmp_path, data):
    grid = tmp_path / "nodata.toml"
    grid.write_text(f'data = "{data}"\n[sweep]\nlr = [0.1]\n')
    before = sweep_keys()
    run = cvfleet_here("sweep", str(grid))
    assert run.returncode == 1
    expected = data if data.startswith("/") else str(tmp_path / data)
    assert error_line(run) == (
        f"data set {expected} cannot be found: no such file or directory "
        "(named sets: mnist5k, mnist, fashion-mnist, mnist-train, fashion-mnist-train)"
    )
    assert sweep_keys() == before


def test_a_trial_whose_worker_process_is_killed_runs_again_and_is_recorded_once(fleet, tmp_path):
    import os
    import signal

    from tasks import sweep_store
    from tasks.store import client
    from tasks.sweep_grid import parse_grid, read_grid

    grid = write_grid(tmp_path / "killed.toml", "[fixed]\nepochs = 8\nseed = 11\n[sweep]\nlr = [0.05]\n")
    sweep_id = cvfleet_here("sweep", str(grid), "--no-wait").stdout.strip()
    g = parse_grid(read_grid(grid))
    (tid,) = [t["id"] for t in sweep_store.trials(g.id)]
    epochs_key = sweep_store.trial_key(sweep_id, tid, "epochs")
    wait_for(lambda: client().llen(epochs_key) >= 1, 120, every=0.02, what="the trial's first epoch")  # mid-training
    first = sweep_store.trials(sweep_id)[0]
    os.kill(first["pid"], signal.SIGKILL)  # the pool child training it dies; late ack redelivers the task
    assert cvfleet("sweep", "show", sweep_id, "--follow").returncode == 0
    (t,) = sweep_store.trials(sweep_id, with_epochs=True)
    assert t["state"] == "done" and t["pid"] != first["pid"] and t["task_id"] == first["task_id"]
    assert [e["epoch"] for e in t["history"]] == list(range(1, 9))
    assert t["attempts"] == 2  # the run that trained it was its task's second
    assert dict(sweep_store.leaderboard(sweep_id)) == {tid: t["val_accuracy"]}
