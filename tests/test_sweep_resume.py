"""Checkpoints and control through the real fleet: a trial whose process is SIGKILLed goes on after its
last finished epoch and ends with the weights of a run that never stopped, bit for bit; `sweep cancel`
stops queued and running trials and keeps their metrics; submitting the grid again continues them."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from support.cli import cvfleet_here
from support.fleet import cvfleet, wait_for
from support.sweep import write_grid

pytestmark = pytest.mark.fleet


def weights(sweep_id: str, t: dict) -> dict:
    """The trial's final weights, from Redis or from the shared root (its record says which)."""
    from tasks import sweep_store

    if t["weights"].startswith("redis:"):
        npz = sweep_store.weights(sweep_id, t["id"])["weights.npz"]
    else:
        npz = (Path(t["weights"]) / "weights.npz").read_bytes()
    with np.load(io.BytesIO(npz), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def has_checkpoint(sweep_id: str, trial_id: str) -> bool:
    from tasks.store import client
    from tasks.trial import checkpoint_path

    return checkpoint_path(sweep_id, trial_id).exists() or bool(
        client().exists(f"cvfleet:sweep:{sweep_id}:trial:{trial_id}:checkpoint")
    )


@pytest.mark.parametrize("storage", ["redis", "shared"])
def test_a_trial_killed_at_epoch_5_of_8_resumes_at_6_and_ends_with_the_unbroken_runs_weights(fleet, tmp_path, storage):
    from tasks import sweep_store
    from tasks.store import client
    from tasks.sweep_grid import parse_grid, read_grid, select
    from tasks.trial import checkpoint_epoch, checkpoint_path, train_trial

    # the full 4,000 training digits: an epoch takes about a second, time to kill it mid-epoch 6
    grid = tmp_path / "resume.toml"
    grid.write_text(
        'data = "mnist5k"\nval_limit = 300\n[fixed]\nepochs = 8\nseed = 21\ndropout = 0.2\naugment = 0.5\n'
        "[sweep]\nlr = [0.05]\n"
    )
    g = parse_grid(read_grid(grid))
    sweep_store.delete(g.id)  # the same grid on each storage: a fresh sweep each time
    sweep_id = cvfleet("sweep", str(grid), "--no-wait", "--no-prune", env={"CVFLEET_STORAGE": storage}).stdout.strip()
    (trial,) = select(g)
    wait_for(lambda: checkpoint_epoch(sweep_id, trial.id) >= 5, 180, every=0.01, what="the checkpoint of epoch 5")
    assert checkpoint_path(sweep_id, trial.id).exists() == (storage == "shared")  # else it is in Redis
    first = sweep_store.trials(sweep_id)[0]
    assert client().llen(sweep_store.trial_key(sweep_id, trial.id, "epochs")) == 5  # still inside epoch 6
    os.kill(first["pid"], signal.SIGKILL)
    assert cvfleet("sweep", "show", sweep_id, "--follow").returncode == 0

    (t,) = sweep_store.trials(sweep_id, with_epochs=True)
    assert (t["state"], t["resumed_from"], t["attempts"]) == ("done", 5, 2)
    assert [e["epoch"] for e in t["history"]] == list(range(1, 9))  # each epoch recorded once
    assert [e["pid"] for e in t["history"]] == [first["pid"]] * 5 + [t["pid"]] * 3  # 6..8 by the new process
    assert t["pid"] != first["pid"]
    assert not has_checkpoint(sweep_id, trial.id)  # a done trial keeps its weights, not its checkpoint

    # the same trial, never interrupted, in a sweep of its own on the same fleet
    ref = f"ref{sweep_id}"
    sweep_store.record_sweep(ref, g.spec, False, sweep_store.sweep(sweep_id)["roots"], storage)
    assert sweep_store.queue_trial(ref, trial, f"{ref}-{trial.id}-x")
    result = train_trial.apply_async(kwargs={"sweep_id": ref, "trial_id": trial.id}, task_id=f"{ref}-{trial.id}-x")
    assert result.get(timeout=300)["state"] == "done"
    (r,) = sweep_store.trials(ref, with_epochs=True)
    resumed, unbroken = weights(sweep_id, t), weights(ref, r)
    assert resumed.keys() == unbroken.keys()
    assert all(np.array_equal(resumed[k], unbroken[k]) for k in resumed)
    assert [e["val_loss"] for e in t["history"]] == [e["val_loss"] for e in r["history"]]
    sweep_store.delete(ref)


def test_cancel_stops_queued_and_running_trials_keeps_their_metrics_and_resubmitting_continues(fleet, tmp_path):
    from tasks import sweep_store
    from tasks.trial import checkpoint_epoch

    grid = tmp_path / "cancel.toml"
    grid.write_text(
        'data = "mnist5k"\ntrain_limit = 2000\nval_limit = 200\n[fixed]\nepochs = 10\nseed = 31\n'
        "[sweep]\nlr = [0.05, 0.04, 0.03, 0.02]\n"
    )
    sub = cvfleet_here("sweep", str(grid), "--no-wait", "--no-prune")
    assert sub.returncode == 0, sub.stderr
    sweep_id = sub.stdout.strip()

    def running_with_an_epoch():
        ts = sweep_store.trials(sweep_id)
        return [t for t in ts if t["state"] == "running" and (t["epochs"] or 0) >= 1]

    wait_for(lambda: len(running_with_an_epoch()) == 2, 120, every=0.05, what="two trials past epoch 1")
    run = cvfleet_here("sweep", "cancel", sweep_id)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        f"cancelled sweep {sweep_id}: 2 queued trial(s) cancelled, 2 running trial(s) stop at the end of their "
        "epoch, 0 had already ended"
    )
    show = cvfleet("sweep", "show", sweep_id, "--follow", timeout=120)
    assert show.returncode == 0, show.stderr
    cancelled = {t["id"]: t for t in sweep_store.trials(sweep_id, with_epochs=True)}
    assert [t["state"] for t in cancelled.values()] == ["cancelled"] * 4
    ran = {tid: t for tid, t in cancelled.items() if t["history"]}
    assert len(ran) == 2
    for t in ran.values():
        assert 1 <= t["epochs"] == len(t["history"]) < 10
        assert [e["epoch"] for e in t["history"]] == list(range(1, t["epochs"] + 1))
        assert t["val_accuracy"] == t["history"][-1]["val_accuracy"]  # its metrics are kept
        assert checkpoint_epoch(sweep_id, t["id"]) == t["epochs"]  # its checkpoint is kept
    assert sweep_store.leaderboard(sweep_id) == []
    assert "cancelled" in show.stdout.splitlines()[0]

    again = cvfleet("sweep", str(grid), "--no-prune", timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"sweep {sweep_id}: 4 trial(s) queued" in again.stderr
    final = {t["id"]: t for t in sweep_store.trials(sweep_id, with_epochs=True)}
    assert [t["state"] for t in final.values()] == ["done"] * 4
    for tid, t in final.items():
        assert [e["epoch"] for e in t["history"]] == list(range(1, 11))
        kept = len(cancelled[tid]["history"])
        assert t["resumed_from"] == kept  # went on after its last recorded epoch
        assert t["history"][:kept] == cancelled[tid]["history"]
    assert len(sweep_store.leaderboard(sweep_id)) == 4


def test_a_trial_cancelled_during_its_last_epoch_ends_done_with_its_weights(fleet, tmp_path):
    from tasks import sweep_store

    grid = tmp_path / "last.toml"
    # one epoch of a wide net over the 4,000 digits, augmented: about 6 s, time to cancel inside it
    grid.write_text(
        'data = "mnist5k"\nval_limit = 200\n[fixed]\nepochs = 1\nseed = 5\nconv = [64, 128]\ndense = 512\n'
        "augment = 0.5\n[sweep]\nlr = [0.05]\n"
    )
    sweep_id = cvfleet_here("sweep", str(grid), "--no-wait", "--no-prune").stdout.strip()
    wait_for(lambda: sweep_store.trials(sweep_id)[0]["state"] == "running", 120, every=0.01, what="the trial running")
    run = cvfleet_here("sweep", "cancel", sweep_id)
    assert run.returncode == 0, run.stderr
    assert "1 running trial(s) stop at the end of their epoch" in run.stdout  # cancelled inside its only epoch
    assert cvfleet("sweep", "show", sweep_id, "--follow", timeout=120).returncode == 0
    (t,) = sweep_store.trials(sweep_id, with_epochs=True)
    assert (t["state"], t["epochs"]) == ("done", 1)  # it had run all its epochs: nothing to continue
    assert t["seconds"] > 2  # the epoch was long enough to be inside it at the cancel
    assert weights(sweep_id, t).keys()  # its weights were stored
    assert [tid for tid, _ in sweep_store.leaderboard(sweep_id)] == [t["id"]]


def test_cancelling_a_finished_sweep_changes_nothing(fleet, tmp_path):
    from tasks import sweep_store

    grid = write_grid(tmp_path / "ended.toml", "[fixed]\nepochs = 1\nseed = 41\n[sweep]\nlr = [0.05]\n")
    assert cvfleet("sweep", str(grid)).returncode == 0
    from tasks.sweep_grid import parse_grid, read_grid

    sweep_id = parse_grid(read_grid(grid)).id
    before = sweep_store.trials(sweep_id)
    run = cvfleet_here("sweep", "cancel", sweep_id)
    assert run.stdout.strip().endswith(
        "0 queued trial(s) cancelled, 0 running trial(s) stop at the end of their epoch, 1 had already ended"
    )
    assert sweep_store.trials(sweep_id) == before
