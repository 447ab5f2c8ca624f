"""A Redis restart in the middle of a sweep: workers reconnect, every trial is recorded once."""

from __future__ import annotations

import pytest

from support.fleet import cvfleet, restart_redis, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.faults]


def test_a_redis_restart_mid_sweep_loses_no_trial_and_records_each_once(fleet, tmp_path):
    from tasks import sweep_store
    from tasks.store import client
    from tasks.sweep_grid import parse_grid, read_grid

    grid = tmp_path / "restart.toml"
    grid.write_text(
        'data = "mnist5k"\ntrain_limit = 800\nval_limit = 200\n[fixed]\nepochs = 4\nseed = 5\n'
        "[sweep]\nlr = [0.03, 0.06]\nbatch_size = [32, 64]\n"
    )
    sub = cvfleet("sweep", str(grid), "--no-wait", "--no-prune")
    assert sub.returncode == 0, sub.stderr
    sweep_id = sub.stdout.strip()
    trial_ids = {t["id"] for t in sweep_store.trials(parse_grid(read_grid(grid)).id)}
    wait_for(
        lambda: any(client().llen(sweep_store.trial_key(sweep_id, t, "epochs")) for t in trial_ids),
        120,
        every=0.05,
        what="a first epoch",
    )
    restart_redis(fleet)
    show = cvfleet("sweep", "show", sweep_id, "--follow", timeout=600)
    assert show.returncode == 0, show.stderr
    trials = sweep_store.trials(sweep_id, with_epochs=True)
    assert {t["id"] for t in trials} == trial_ids
    for t in trials:
        assert t["state"] == "done", t.get("error")
        assert [e["epoch"] for e in t["history"]] == [1, 2, 3, 4]
    assert dict(sweep_store.leaderboard(sweep_id)) == {t["id"]: t["val_accuracy"] for t in trials}
