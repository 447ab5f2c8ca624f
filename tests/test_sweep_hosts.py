"""Sweeps on hosts that share nothing with the submitter but Redis.

Each train host is a real `cvfleet worker` in a mount namespace of its own (`unshare --mount`) where
the submitter's data root and the folder of the user's CSV are hidden under empty tmpfs, with a data
root of its own: it sees the submitter's files only through Redis. Its Redis and workers are the
test's own (conftest.bare_workers), so a host can be SIGKILLed without hurting the session fleet.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from support.fleet import bare_workers, cvfleet, start_worker, wait_for
from support.sweep import error_line

pytestmark = [pytest.mark.fleet, pytest.mark.slow]


def _unshare_refused() -> str | None:
    """Why a mount namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "hidden hosts need root (unshare --mount, mount -t tmpfs); CI runs as root"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"unshare --mount is not permitted here: {probe.stderr.strip()}"


hidden_hosts = pytest.mark.skipif(_unshare_refused() is not None, reason=str(_unshare_refused()))

VT = 45  # visibility timeout (s): a dead host's trial is delivered again within VT + 10 s; trials stay well below


def write_digits_csv(path: Path, n: int, start: int = 0) -> Path:
    """n digits of mnist5k as a user's CSV in the seeds' layout (label first, pixels 0..255)."""
    from nn.data import load_dataset
    from workers.asset_cache import data_path

    ds = load_dataset(data_path("mnist5k"), label="last")
    rows = np.column_stack([ds.y[start : start + n], np.round(ds.x[start : start + n].reshape(n, -1) * 255)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rows.astype(np.int64), fmt="%d", delimiter=",")
    return path


class Hosts:
    """The test's Redis, the submitter's environment and files, and the hidden hosts' workers."""

    def __init__(self, root: Path, env: dict, client, workers: dict, hidden):
        self.root, self.client, self.workers, self.hidden = root, client, workers, hidden
        self.head = root / "head"  # the submitter's data root
        self.user = root / "user"  # where the user keeps the CSV
        self.env = {**env, "CVFLEET_DATA": str(self.head / "data")}
        self.worker_env = env

    def data_root(self, name: str) -> Path:
        return self.root / f"host-{name}" / "data"

    def start(self, name: str):
        self.workers[name] = start_worker(self.root, self.worker_env, name, self.hidden)
        return self.workers[name]

    def sweep(self, *args, **kw):
        return cvfleet("sweep", *args, env={**self.env, **kw.pop("env", {})}, **kw)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    root = tmp_path_factory.mktemp("hosts")
    head, user = root / "head", root / "user"
    for d in (head / "data", user):
        d.mkdir(parents=True)

    def hidden(name: str) -> list[str]:
        """A host that sees neither the submitter's data root nor the user's folder, with a data root and
        cache of its own."""
        own = root / f"host-{name}"
        mounts = " && ".join(f"mount -t tmpfs tmpfs {shlex.quote(str(d))}" for d in (head, user))
        own_env = f"CVFLEET_DATA={shlex.quote(str(own / 'data'))} CVFLEET_CACHE={shlex.quote(str(own / 'cache'))}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec env {own_env} "$@"']

    hidden_argv = lambda name: [*hidden(name), "sh"]  # noqa: E731  ("$@" starts after $0)
    with bare_workers(root, {"CVFLEET_VISIBILITY_TIMEOUT": str(VT)}, ("a",), prefix=hidden_argv) as (env, c, w):
        yield Hosts(root, env, c, w, hidden_argv)


@pytest.fixture
def store(hosts, monkeypatch):
    """tasks.sweep_store, reading the hosts' Redis in this process."""
    from tasks import store as store_module
    from tasks import sweep_store

    monkeypatch.setattr(store_module, "_clients", {os.getpid(): hosts.client})
    return sweep_store


def grid_file(path: Path, csv: Path, body: str) -> Path:
    path.write_text(f'data = "{csv}"\nlabel = "first"\nholdout = 0.2\n{body}')
    return path


@hidden_hosts
def test_the_hidden_host_cannot_see_the_submitters_files(hosts):
    csv = write_digits_csv(hosts.user / "probe.csv", 3)
    seen = subprocess.run([*hosts.hidden("probe"), "ls", "-A", str(csv.parent), str(hosts.head)], capture_output=True)
    assert seen.returncode == 0, seen.stderr
    assert sorted(seen.stdout.split()) == sorted([f"{csv.parent}:".encode(), f"{hosts.head}:".encode()])  # both empty
    csv.unlink()


@hidden_hosts
def test_a_sweep_on_a_users_csv_trains_on_a_hidden_host_and_best_out_writes_its_weights_here(hosts, store):
    from nn import load_model
    from tasks.sweep_grid import parse_grid, read_grid
    from tasks.trial_data import load_splits

    csv = write_digits_csv(hosts.user / "digits.csv", 800)
    grid = grid_file(hosts.root / "csv.toml", csv, "[fixed]\nepochs = 2\nseed = 3\n[sweep]\nlr = [0.05, 0.02]\n")
    run = hosts.sweep(str(grid), "--no-prune")
    assert run.returncode == 0, run.stderr + run.stdout
    g = parse_grid(read_grid(grid))
    trials = store.trials(g.id)
    assert [t["state"] for t in trials] == ["done", "done"]
    assert all(t["worker"].startswith("a@") for t in trials)
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert (hosts.data_root("a") / "blobs" / sha / "digits.csv").read_bytes() == csv.read_bytes()  # via Redis
    assert hosts.client.ttl(f"cvfleet:blob:{sha}") >= hosts.client.ttl(f"cvfleet:sweep:{g.id}")

    out = hosts.root / "best-model"
    best = hosts.sweep("best", g.id, "--out", str(out))
    assert best.returncode == 0, best.stderr
    top, score = store.leaderboard(g.id)[0]
    assert f"weights:  {out}" in best.stdout.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "training.json", "weights.npz"]
    _, val = load_splits(json.dumps(g.data, sort_keys=True), str(csv))
    _, accuracy = load_model(out).evaluate(val.x, val.y)
    assert accuracy == score == next(t for t in trials if t["id"] == top)["val_accuracy"]
    assert json.loads((out / "training.json").read_text())["trial"] == top
    assert not (hosts.data_root("a") / "sweeps").exists()  # the host kept no weights or checkpoints on disk


@hidden_hosts
def test_a_corrupt_data_blob_fails_the_trial_with_the_reason_and_submitting_again_sends_it_anew(hosts, store):
    from tasks.sweep_grid import parse_grid, read_grid

    csv = write_digits_csv(hosts.user / "corrupt.csv", 300, start=1000)
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    hosts.client.set(f"cvfleet:blob:{sha}", b"not the digits")  # held under the file's hash, wrong bytes
    grid = grid_file(hosts.root / "corrupt.toml", csv, "[fixed]\nepochs = 1\nseed = 4\n[sweep]\nlr = [0.05]\n")
    run = hosts.sweep(str(grid), "--no-prune")
    assert run.returncode == 1
    (t,) = store.trials(parse_grid(read_grid(grid)).id)
    reason = (
        f"DataError: corrupt.csv: the bytes in Redis do not match its sha256 {sha[:12]} (corrupt): "
        "submit the sweep again to send it anew"
    )
    assert (t["state"], t["error"]) == ("failed", reason)
    assert f"failed  {t['id']}  {reason}" in run.stdout
    assert not hosts.client.exists(f"cvfleet:blob:{sha}")  # the bad copy is gone
    again = hosts.sweep(str(grid), "--no-prune")
    assert again.returncode == 0, again.stderr + again.stdout
    assert hosts.client.exists(f"cvfleet:blob:{sha}")
    assert [t["state"] for t in store.trials(parse_grid(read_grid(grid)).id)] == ["done"]


@hidden_hosts
def test_a_csv_over_the_size_limit_is_refused_in_one_line_and_nothing_reaches_redis(hosts):
    csv = write_digits_csv(hosts.user / "big.csv", 800)
    grid = grid_file(hosts.root / "big.toml", csv, "[sweep]\nlr = [0.05]\n")

    def keys():
        return {k for pattern in ("cvfleet:sweep*", "cvfleet:blob:*") for k in hosts.client.scan_iter(match=pattern)}

    before = keys()
    run = hosts.sweep(str(grid), env={"CVFLEET_BLOB_MAX_MIB": "0.5"})
    assert run.returncode == 1
    assert error_line(run) == (
        f"{csv} is {csv.stat().st_size / 2**20:.1f} MiB, more than the 0.5 MiB a sweep's data may take through "
        "Redis (CVFLEET_BLOB_MAX_MIB): raise the limit, or share the storage root and set CVFLEET_STORAGE=shared"
    )
    assert keys() == before


@hidden_hosts
def test_a_trial_whose_host_is_killed_goes_on_from_its_checkpoint_on_another_hidden_host(hosts, store):
    """Host a is SIGKILLed (main process and pool) mid-trial; host b, which never saw a's disk,
    continues after a's last checkpoint, and ends with the weights of a run that never stopped."""
    from nn.checkpoint import checkpoint_epoch
    from tasks.sweep_grid import parse_grid, read_grid, select

    csv = write_digits_csv(hosts.user / "resume.csv", 1400, start=2000)
    grid = grid_file(
        hosts.root / "resume.toml",
        csv,
        "val_limit = 200\n[fixed]\nepochs = 6\nseed = 21\ndropout = 0.2\naugment = 0.5\n[sweep]\nlr = [0.05]\n",
    )
    sub = hosts.sweep(str(grid), "--no-wait", "--no-prune")
    assert sub.returncode == 0, sub.stderr
    sweep_id = sub.stdout.strip()
    (trial,) = select(parse_grid(read_grid(grid)))
    ckpt_key = f"cvfleet:sweep:{sweep_id}:trial:{trial.id}:checkpoint"

    def ckpt_epoch() -> int:
        npz = hosts.client.execute_command("GET", ckpt_key, NEVER_DECODE=True)
        return checkpoint_epoch(npz)[0] if npz else 0

    wait_for(lambda: ckpt_epoch() >= 2, 120, every=0.01, what="the checkpoint of epoch 2")
    a = hosts.workers["a"]
    os.killpg(a.pid, signal.SIGKILL)  # the whole host's worker: main process and pool child
    a.wait(10)
    killed_at = time.monotonic()
    kept = ckpt_epoch()
    first = store.trials(sweep_id)[0]
    assert first["worker"].startswith("a@") and first["state"] == "running"
    assert 2 <= kept < 6, "the trial ended before the kill: make its epochs longer"

    hosts.start("b")  # another hidden host, its data root empty: the checkpoint comes from Redis
    show = hosts.sweep("show", sweep_id, "--follow", timeout=300)
    assert show.returncode == 0, show.stderr
    (t,) = store.trials(sweep_id, with_epochs=True)
    print(
        f"\nresume: killed host a after its checkpoint of epoch {kept}; host b resumed from epoch {t['resumed_from']} "
        f"(attempt {t['attempts']}), done {time.monotonic() - killed_at:.1f} s after the kill "
        f"(visibility timeout {VT} s); checkpoint {hosts.client.strlen(ckpt_key) or 'dropped'}, "
        f"weights.npz {len(store.weights(sweep_id, t['id'])['weights.npz'])} bytes"
    )
    assert t["state"] == "done" and t["worker"].startswith("b@")
    assert (t["resumed_from"], t["attempts"]) == (kept, 2)
    assert [e["epoch"] for e in t["history"]] == list(range(1, 7))  # each epoch recorded once
    assert [e["pid"] for e in t["history"]][:kept] == [first["pid"]] * kept
    assert not hosts.client.exists(ckpt_key)  # a done trial keeps its weights, not its checkpoint
    resumed = store.weights(sweep_id, t["id"])

    # the same sweep, deleted and submitted again: trained whole on host b
    assert hosts.sweep("delete", sweep_id).returncode == 0
    assert hosts.client.keys(f"cvfleet:*{sweep_id}*") == []
    again = hosts.sweep(str(grid), "--no-prune", timeout=300)
    assert again.returncode == 0, again.stderr + again.stdout
    (r,) = store.trials(sweep_id, with_epochs=True)
    assert (r["resumed_from"], r["worker"][:2]) == (0, "b@")
    unbroken = store.weights(sweep_id, r["id"])
    with np.load(io.BytesIO(resumed["weights.npz"])) as x, np.load(io.BytesIO(unbroken["weights.npz"])) as y:
        assert x.files == y.files
        assert all(np.array_equal(x[k], y[k]) for k in x.files)
    assert [e["val_loss"] for e in t["history"]] == [e["val_loss"] for e in r["history"]]


def test_a_data_blob_is_sent_once_and_deleted_with_the_last_sweep_that_names_it(bare_redis):
    from tasks import sweep_store

    sha = hashlib.sha256(b"1,2,3").hexdigest()
    files = {"dir": False, "files": {"d.csv": sha}}
    assert sweep_store.put_blob(sha, lambda: b"1,2,3") is True
    assert sweep_store.put_blob(sha, lambda: pytest.fail("sent twice")) is False  # a resubmission: TTL only
    for sweep_id in ("s1", "s2"):
        sweep_store.record_sweep(sweep_id, {"data": {"data": "/u/d.csv"}}, True, [], "redis", files)
    sweep_store.delete("s1")
    assert sweep_store.blob(sha) == b"1,2,3"  # s2 still names it
    sweep_store.delete("s2")
    assert sweep_store.blob(sha) is None


def test_only_the_run_that_owns_a_trial_writes_its_one_checkpoint(bare_redis):
    from tasks import sweep_store
    from tasks.sweep_grid import parse_grid, select

    g = parse_grid({"data": "mnist5k", "fixed": {"epochs": 2}})
    (trial,) = select(g)
    sweep_store.record_sweep(g.id, g.spec, True, [], "redis")
    assert sweep_store.queue_trial(g.id, trial, "task-1")
    assert sweep_store.claim(g.id, trial.id, "task-1", "run-1", "w") == "ok"
    assert not sweep_store.put_checkpoint(g.id, trial.id, "run-0", b"stale")  # an execution that lost it
    assert sweep_store.checkpoint(g.id, trial.id) is None
    assert sweep_store.put_checkpoint(g.id, trial.id, "run-1", b"epoch 1")
    assert sweep_store.put_checkpoint(g.id, trial.id, "run-1", b"epoch 2")
    assert sweep_store.checkpoint(g.id, trial.id) == b"epoch 2"  # overwritten: one per trial
    assert bare_redis.keys("*checkpoint*") == [f"cvfleet:sweep:{g.id}:trial:{trial.id}:checkpoint"]
    assert 0 < bare_redis.ttl(f"cvfleet:sweep:{g.id}:trial:{trial.id}:checkpoint") <= sweep_store.RECORD_TTL


def test_a_hosts_copy_of_the_users_data_is_fetched_once_checked_and_keyed_by_hash(bare_redis, tmp_path, monkeypatch):
    from tasks import sweep_store
    from tasks.trial_data import local_copy

    monkeypatch.setenv("CVFLEET_DATA", str(tmp_path / "host"))
    blobs = {"train-images": b"images", "train-labels": b"labels"}
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    for name, data in blobs.items():
        sweep_store.put_blob(sha[name], lambda data=data: data)
    directory = local_copy({"dir": True, "files": sha})
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == blobs
    one = local_copy({"dir": False, "files": {"a.csv": sha["train-images"]}})
    same = local_copy({"dir": False, "files": {"b.csv": sha["train-images"]}})  # same bytes, another name
    assert (one, same) == (tmp_path / "host" / "blobs" / sha["train-images"] / "a.csv", one.with_name("b.csv"))
    assert one.read_bytes() == same.read_bytes() == b"images"
    bare_redis.flushall()  # kept on the host: Redis is not asked again
    assert local_copy({"dir": True, "files": sha}) == directory
    assert local_copy({"dir": False, "files": {"a.csv": sha["train-images"]}}) == one


def test_a_storage_other_than_redis_or_shared_is_refused_in_one_line():
    run = cvfleet("sweep", "list", env={"CVFLEET_STORAGE": "nfs"}, timeout=60)
    assert run.returncode == 1
    assert error_line(run) == (
        "CVFLEET_STORAGE='nfs' is neither 'redis' (the default: hosts share only Redis) "
        "nor 'shared' (every worker sees the storage root at the same path)"
    )
