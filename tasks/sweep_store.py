"""Sweeps as Redis records: the grid, every trial's state and metrics, the leaderboard.

The keys and their fields are listed once, in `tasks.store`. A trial moves queued -> running ->
done | pruned | failed | cancelled. Exactly one record per grid point: the record is keyed by the
trial id, and every write a task makes is a Lua script that first checks the task still owns the
trial (`run`, a token per execution) and that the record is not final, so a redelivered, superseded
or duplicated execution writes nothing twice.

Scores: the leaderboard and the per-epoch zsets hold the grid's metric (validation accuracy unless
the grid names another), ranked in the grid's mode (max or min).

Bytes (the sweep's `storage` is "redis", the default): a trial's host may see none of the
submitter's files, so what it needs and what it makes travel through Redis. The user's data files
go in at submit under their sha256 (`put_blob`: content keys, so a file shared by sweeps is held
once); a trial's latest checkpoint and its final model go under keys of the trial (one checkpoint
per trial, overwritten each epoch by the run that owns the trial, so Redis holds at most one per
running trial; a content key would leave every epoch's state behind until it expired), and they go
with the sweep (its TTL, `delete`).
"""

from __future__ import annotations

import json
import os
import time

from tasks.store import RECORD_TTL, client, key, script

FINAL = ("done", "pruned", "failed", "cancelled")
STATES = ("queued", "running", "done", "pruned", "failed", "cancelled")


def sweep_key(sweep_id: str, *parts) -> str:
    return key("sweep", sweep_id, *parts)


def trial_key(sweep_id: str, trial_id: str, *parts) -> str:
    return key("sweep", sweep_id, "trial", trial_id, *parts)


# Every script returns 0 without writing unless its guard holds, and refreshes the TTL of what it writes.
_QUEUE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'pruned' then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'index', ARGV[2], 'point', ARGV[3], 'recipe', ARGV[4],
           'state', 'queued', 'task_id', ARGV[5], 'queued', ARGV[6])
redis.call('HDEL', KEYS[1], 'run', 'error', 'started', 'finished', 'worker', 'cancel')
redis.call('EXPIRE', KEYS[1], ARGV[7])
return 1
"""

_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if state == 'done' or state == 'pruned' or state == 'failed' or state == 'cancelled' then return 'final' end
if redis.call('HGET', KEYS[1], 'task_id') ~= ARGV[1] then return 'stale' end
local keep = tonumber(ARGV[8])
if keep > 0 then redis.call('LTRIM', KEYS[2], 0, keep - 1) else redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'state', 'running', 'run', ARGV[2], 'worker', ARGV[3], 'started', ARGV[4],
           'epochs', redis.call('LLEN', KEYS[2]), 'pid', ARGV[6], 'attempts', ARGV[7], 'resumed_from', keep)
redis.call('HDEL', KEYS[1], 'error', 'finished')
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 'ok'
"""

_APPEND = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
local reply = 1
if redis.call('HGET', KEYS[1], 'cancel') then reply = 2 end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return reply end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'epochs', redis.call('LLEN', KEYS[2]))
redis.call('EXPIRE', KEYS[2], ARGV[3])
return reply
"""

# A queued trial is cancelled at once; a running one is flagged, and its next append tells it to stop.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[1])
elseif state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', 1)
end
return state or 'gone'
"""

# ASHA's promotion at one rung, decided once per trial and atomically: tasks.schedulers.asha_promotion
# (the trial's value joins the rung; it goes on when fewer than k = max(1, floor(n / eta)) of the n
# values so far are strictly better), run inside Redis. A repeated call (a resumed trial) gets the first answer.
# KEYS: rung zset, decisions hash.  ARGV: trial id, value, eta, mode, TTL.
_PROMOTE = """
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return known end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
local k = math.max(1, math.floor(n / tonumber(ARGV[3])))
local better, kth
if ARGV[4] == 'max' then
  better = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf')
  kth = redis.call('ZREVRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')[2]
else
  better = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
  kth = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')[2]
end
local decision = 'stop'
if better < k then decision = 'promote' end
local answer = decision .. ' ' .. n .. ' ' .. kth
redis.call('HSET', KEYS[2], ARGV[1], answer)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return answer
"""

# KEYS: trial, leaderboard, epoch:1..epoch:n.  ARGV: guard field, guard value, trial id, state,
# leaderboard score ('' = none), TTL, n field/value pairs, then per-epoch scores for KEYS[3..].
_FINISH = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'pruned' or state == 'failed' or state == 'cancelled' then return 0 end
local nfields = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'state', ARGV[4])
redis.call('HDEL', KEYS[1], 'cancel')
for i = 0, nfields - 1 do
  redis.call('HSET', KEYS[1], ARGV[8 + 2 * i], ARGV[9 + 2 * i])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
local first = 8 + 2 * nfields
for k = 3, #KEYS do
  redis.call('ZADD', KEYS[k], ARGV[first + k - 3], ARGV[3])
  redis.call('EXPIRE', KEYS[k], ARGV[6])
end
return 1
"""


# KEYS: trial, the trial's checkpoint.  ARGV: run, npz bytes, TTL.
_PUT_CHECKPOINT = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: trial, the trial's weights.  ARGV: run, TTL, then file name/bytes pairs.
_PUT_WEIGHTS = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


def blob_key(sha256: str) -> str:
    return key("blob", sha256)


# -- submission (client) ---------------------------------------------------------------------


def record_sweep(
    sweep_id: str, grid: dict, prune: bool, roots: list[str], storage: str | None = None, files: dict | None = None
) -> None:
    """Create the sweep's record, or refresh it on resubmission (prune, roots, storage and files as
    given now). `files`: the user's data as {"dir": bool, "files": {name: sha256}}, its bytes already
    stored with `put_blob` (None: a named data set, or shared storage). `storage`: CVFLEET_STORAGE's
    unless given."""
    from workers import config

    now = time.time()
    r = client()
    sk = sweep_key(sweep_id)
    pipe = r.pipeline()
    pipe.hsetnx(sk, "created", now)
    pipe.hset(
        sk,
        mapping={
            "id": sweep_id,
            "submitted": now,
            "grid": json.dumps(grid),
            "prune": int(prune),
            "roots": json.dumps(roots),
            "storage": storage or config.load().storage,
            "files": json.dumps(files),
        },
    )
    pipe.expire(sk, RECORD_TTL)
    pipe.zadd(key("sweeps"), {sweep_id: now})
    pipe.execute()


def put_blob(sha256: str, data) -> bool:
    """Hold the bytes of a user's data file under their hash for RECORD_TTL (at least as long as the
    sweep that names them). `data`: a function returning the bytes, called only when Redis lacks
    them (a resubmission refreshes the TTL without sending the file again). True if sent."""
    r = client()
    k = blob_key(sha256)
    if r.expire(k, RECORD_TTL):
        return False
    r.set(k, data(), ex=RECORD_TTL)
    return True


def queue_trial(sweep_id: str, trial, task_id: str) -> bool:
    """Mark the trial queued for `task_id` (which supersedes any older task of it); False if it is
    already done or pruned and must not run again."""
    r = client()
    pipe = r.pipeline()
    pipe.zadd(sweep_key(sweep_id, "trials"), {trial.id: trial.index})
    pipe.expire(sweep_key(sweep_id, "trials"), RECORD_TTL)
    pipe.execute()
    return bool(
        script(_QUEUE)(
            keys=[trial_key(sweep_id, trial.id)],
            args=[
                trial.id,
                trial.index,
                json.dumps(trial.point),
                json.dumps(trial.recipe),
                task_id,
                time.time(),
                RECORD_TTL,
            ],
        )
    )


# -- trial execution (worker) ----------------------------------------------------------------


def claim(sweep_id: str, trial_id: str, task_id: str, run: str, worker: str, attempt: int = 1, keep: int = 0) -> str:
    """'ok' when this execution now owns the trial, else why not: 'gone' (no record: sweep
    deleted), 'final' (already done/pruned/failed/cancelled), 'stale' (superseded).
    `keep`: the epochs its checkpoint holds; those stay recorded, any later ones are dropped (it
    trains them again). `attempt`: which run of its task this is (2 after a worker died on it)."""
    return script(_CLAIM)(
        keys=[trial_key(sweep_id, trial_id), trial_key(sweep_id, trial_id, "epochs")],
        args=[task_id, run, worker, time.time(), RECORD_TTL, os.getpid(), attempt, int(keep)],
    )


def trial_recipe(sweep_id: str, trial_id: str) -> dict | None:
    """The checked recipe the trial trains, or None if its record is gone."""
    raw = client().hget(trial_key(sweep_id, trial_id), "recipe")
    return None if raw is None else json.loads(raw)


def append_epoch(sweep_id: str, trial_id: str, run: str, metrics: dict) -> str:
    """Append one epoch's metrics: 'ok', 'cancel' (recorded, and the sweep was cancelled: stop
    now), or 'lost' (this execution no longer owns the trial: nothing written).

    Idempotent by epoch number: a client retry after a Redis restart (the script ran, its reply was
    lost) finds the epoch already there and appends nothing."""
    reply = script(_APPEND)(
        keys=[trial_key(sweep_id, trial_id), trial_key(sweep_id, trial_id, "epochs")],
        args=[run, json.dumps(metrics), RECORD_TTL, int(metrics["epoch"])],
    )
    return {0: "lost", 1: "ok", 2: "cancel"}[int(reply)]


def put_checkpoint(sweep_id: str, trial_id: str, run: str, npz: bytes) -> bool:
    """Replace the trial's checkpoint, if `run` still owns the trial (else nothing is written)."""
    keys = [trial_key(sweep_id, trial_id), trial_key(sweep_id, trial_id, "checkpoint")]
    return bool(script(_PUT_CHECKPOINT)(keys=keys, args=[run, npz, RECORD_TTL]))


def put_weights(sweep_id: str, trial_id: str, run: str, files: dict[str, bytes]) -> bool:
    """Store the trial's model ({file name: bytes}, nn.serialize.model_files), if `run` still owns
    the trial."""
    keys = [trial_key(sweep_id, trial_id), trial_key(sweep_id, trial_id, "weights")]
    args = [run, RECORD_TTL, *(x for kv in files.items() for x in kv)]
    return bool(script(_PUT_WEIGHTS)(keys=keys, args=args))


def checkpoint(sweep_id: str, trial_id: str) -> bytes | None:
    """The bytes of the trial's latest checkpoint in Redis, or None."""
    return client().execute_command("GET", trial_key(sweep_id, trial_id, "checkpoint"), NEVER_DECODE=True)


def drop_checkpoint(sweep_id: str, trial_id: str) -> None:
    client().delete(trial_key(sweep_id, trial_id, "checkpoint"))


def blob(sha256: str) -> bytes | None:
    """The bytes stored under `sha256` (not checked here: the reader verifies them), or None."""
    return client().execute_command("GET", blob_key(sha256), NEVER_DECODE=True)


def drop_blob(sha256: str) -> None:
    client().delete(blob_key(sha256))


def promote(sweep_id: str, trial_id: str, epoch: int, value: float, eta: int, mode: str) -> tuple[bool, int, float]:
    """ASHA at the rung of `epoch`: (goes on, trials in the rung so far, the value the top 1/eta
    needed), decided atomically and once per trial (see _PROMOTE)."""
    answer = script(_PROMOTE)(
        keys=[sweep_key(sweep_id, "rung", epoch), sweep_key(sweep_id, "rung", epoch, "decided")],
        args=[trial_id, repr(float(value)), eta, mode, RECORD_TTL],
    )
    decision, n, cutoff = answer.split()
    return decision == "promote", int(n), float(cutoff)


def finish(
    sweep_id: str,
    trial_id: str,
    state: str,
    fields: dict,
    *,
    run: str | None = None,
    task_id: str | None = None,
    score: float | None = None,
    curve: list[float] = (),
) -> bool:
    """Write the trial's final state once: guarded by its run token (or task id, for a task that
    gives up before it runs). `score` (the grid's metric at the end) puts it on the leaderboard;
    `curve` (that metric per epoch) makes it count in the median-stopping rule."""
    guard = ("run", run) if run is not None else ("task_id", task_id)
    fields = {**fields, "finished": time.time()}
    flat = [str(x) for kv in fields.items() for x in (kv[0], _text(kv[1]))]
    keys = [
        trial_key(sweep_id, trial_id),
        sweep_key(sweep_id, "leaderboard"),
        *(sweep_key(sweep_id, "epoch", k) for k in range(1, len(curve) + 1)),
    ]
    args = [
        *guard,
        trial_id,
        state,
        "" if score is None else repr(float(score)),
        RECORD_TTL,
        len(fields),
        *flat,
        *(repr(float(v)) for v in curve),
    ]
    return bool(script(_FINISH)(keys=keys, args=args))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def epoch_values(sweep_id: str, epoch: int) -> list[float]:
    """The metric after `epoch` of every done trial (what the median-stopping rule compares with)."""
    return [s for _, s in client().zrange(sweep_key(sweep_id, "epoch", epoch), 0, -1, withscores=True)]


def cancel(sweep_id: str) -> dict[str, int]:
    """Cancel the sweep's trials: queued ones at once, running ones at their next epoch end (their
    metrics and checkpoints stay, so submitting the grid again continues them; one whose next epoch
    end is its last ends done, with its weights). Returns how many
    trials were in each state when cancelled ('queued' ones are now cancelled, 'running' ones stop
    at their next epoch end, the others had ended)."""
    r = client()
    ids = r.zrange(sweep_key(sweep_id, "trials"), 0, -1)
    cancel_trial = script(_CANCEL)
    counts: dict[str, int] = {}
    for tid in ids:
        outcome = cancel_trial(keys=[trial_key(sweep_id, tid)], args=[time.time()])
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# -- reading (client) ------------------------------------------------------------------------


def sweep(sweep_id: str) -> dict | None:
    data = client().hgetall(sweep_key(sweep_id))
    if not data:
        return None
    data["grid"] = json.loads(data["grid"])
    data["roots"] = json.loads(data.get("roots") or "[]")
    data["prune"] = bool(int(data.get("prune", 1)))
    grid = data["grid"]
    grid.setdefault("space", {})
    grid.setdefault("metric", "val_accuracy")
    grid.setdefault("mode", "max")
    grid.setdefault("scheduler", {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0})
    for f in ("created", "submitted"):
        data[f] = float(data[f])
    data["storage"] = data.get("storage") or "shared"  # records from before bytes went through Redis
    data["files"] = json.loads(data.get("files") or "null")
    return data


_FLOATS = (
    "val_accuracy",
    "best_val_accuracy",
    "val_loss",
    "loss",
    "accuracy",
    "seconds",
    "queued",
    "started",
    "finished",
    "median",
    "score",
    "cutoff",
)
_INTS = ("index", "epochs", "best_epoch", "blas_threads", "pruned_at", "pid", "attempts", "resumed_from", "rung_size")


def _trial_record(raw: dict) -> dict:
    t = dict(raw)
    for f in _FLOATS:
        t[f] = float(t[f]) if t.get(f) not in (None, "") else None
    for f in _INTS:
        t[f] = int(t[f]) if t.get(f) not in (None, "") else None
    for f in ("point", "recipe"):
        t[f] = json.loads(t[f]) if t.get(f) else {}
    return t


def trials(sweep_id: str, with_epochs: bool = False) -> list[dict]:
    """Every trial of the sweep in grid order, optionally with its per-epoch metrics."""
    r = client()
    ids = r.zrange(sweep_key(sweep_id, "trials"), 0, -1)
    pipe = r.pipeline()
    for tid in ids:
        pipe.hgetall(trial_key(sweep_id, tid))
        if with_epochs:
            pipe.lrange(trial_key(sweep_id, tid, "epochs"), 0, -1)
    replies = pipe.execute()
    step = 2 if with_epochs else 1
    out = []
    for i in range(len(ids)):
        raw = replies[i * step]
        if not raw:
            continue
        t = _trial_record(raw)
        if with_epochs:
            t["history"] = [json.loads(e) for e in replies[i * step + 1]]
        out.append(t)
    return out


def leaderboard(sweep_id: str, mode: str | None = None) -> list[tuple[str, float]]:
    """(trial id, final metric) of done trials, best first (in the sweep's mode unless given)."""
    if mode is None:
        mode = json.loads(client().hget(sweep_key(sweep_id), "grid") or "{}").get("mode", "max")
    read = client().zrevrange if mode == "max" else client().zrange
    return read(sweep_key(sweep_id, "leaderboard"), 0, -1, withscores=True)


def progress(sweep_id: str) -> dict | None:
    """The sweep, its trials, counts per state, the best done trial, and whether it has ended."""
    info = sweep(sweep_id)
    if info is None:
        return None
    ts = trials(sweep_id)
    counts = dict.fromkeys(STATES, 0)
    for t in ts:
        counts[t.get("state", "queued")] = counts.get(t.get("state", "queued"), 0) + 1
    board = leaderboard(sweep_id, info["grid"]["mode"])[:1]
    info.update(
        trials=ts, counts=counts, best=board[0] if board else None, finished=all(t.get("state") in FINAL for t in ts)
    )
    return info


def weights(sweep_id: str, trial_id: str) -> dict[str, bytes] | None:
    """The trial's model as {file name: bytes} (what nn.serialize.model_files made), or None."""
    raw = client().execute_command("HGETALL", trial_key(sweep_id, trial_id, "weights"), NEVER_DECODE=True)
    return {k.decode(): v for k, v in raw.items()} or None


def sweep_ids(limit: int = 50) -> list[str]:
    return client().zrevrange(key("sweeps"), 0, limit - 1)


def delete(sweep_id: str) -> int:
    """Remove every key of the sweep: its record, trials, epochs, leaderboard, checkpoints, weights,
    the data files no other sweep names, and the attempt counters and Celery results of its tasks
    (task ids start with the sweep id). Returns how many."""
    r = client()
    patterns = [sweep_key(sweep_id) + ":*", key("attempts", sweep_id) + "-*", f"celery-task-meta-{sweep_id}-*"]
    keys = [sweep_key(sweep_id), *(k for p in patterns for k in r.scan_iter(match=p, count=1000))]
    others = {h for s in sweep_ids(10**9) if s != sweep_id for h in _blobs_of(s)}
    keys += [blob_key(h) for h in _blobs_of(sweep_id) - others]
    pipe = r.pipeline()
    for k in keys:
        pipe.delete(k)
    pipe.zrem(key("sweeps"), sweep_id)
    replies = pipe.execute()
    return sum(replies[:-1])


def _blobs_of(sweep_id: str) -> set[str]:
    files = json.loads(client().hget(sweep_key(sweep_id), "files") or "null")
    return set(files["files"].values()) if files else set()
