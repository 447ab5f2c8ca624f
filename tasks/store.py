"""The Redis connection tasks and clients share, and the one schema of every key cvfleet writes.

All Redis access goes through the store modules: `tasks.batch_store` (annotation batches),
`tasks.sweep_store` (sweeps) and this one (the connection, key names, attempt counters). Celery's own
keys (queues, `celery-task-meta-*`, chord counters) keep their names; results expire after 7 days,
cvfleet's records RECORD_TTL (30 days) after their last update.

    cvfleet:batches                        zset  batch id -> submit time
    cvfleet:batches:running                set   batch ids with a video not yet ended (the watchdog's list)
    cvfleet:workers                        hash  worker name -> "detect pool processes, last heartbeat time"
    cvfleet:watchdog                       str   which worker looks after the batches this interval (expires)
    cvfleet:protocol                       str   the cvfleet protocol number the fleet speaks (workers/protocol.py):
                                                 written by `cvfleet up`, checked by every `cvfleet worker` at start
    cvfleet:batch:<id>                     hash  id, created, out, settings (JSON), static, static_ignore,
                                                 preview, tiles_per_task, roots (JSON), videos (count), cancelled (time)
    cvfleet:batch:<id>:pending             list  chunks not yet sent, as "video:chunk:run" (fed a few at a time)
    cvfleet:batch:<id>:inflight            zset  chunks sent and not yet reported -> time of their last news
    cvfleet:batch:<id>:tasks               hash  chunk in flight -> its task id (`batch cancel` revokes them)
    cvfleet:batch:<id>:sends               hash  chunk -> times sent (the watchdog gives up after 3)
    cvfleet:batch:<id>:video:<i>           hash  index, video, video_dir, state, run, updated, frames, tiles,
                                                 tiles_reused, chunks, cache, ms_per_tile, task_id (prepare),
                                                 label_task_id, label_sent, label_sends, prepare_sends, error,
                                                 warning, summary (JSON), finished, updated_by, width,
                                                 height, streaming (segments extracting; the plan is open),
                                                 planned (chunks planned so far), prefix (chunks 0..k-1
                                                 all done), labelled (chunks 0..k-1 labelled early),
                                                 extract_sends,
                                                 single_pass (seeking was not exact: one segment)
    cvfleet:batch:<id>:video:<i>:plan      hash  chunk index -> its jobs (JSON [[frame, tile], ...]); dropped when
                                                 the video ends
    cvfleet:batch:<id>:video:<i>:chunks    hash  detect chunk index -> tiles in it (progress; dropped when
                                                 the video is done)
    cvfleet:batch:<id>:video:<i>:segments  hash  extraction segment -> its result (JSON: frames, sources,
                                                 decoded, ended, pixel hashes at its borders); dropped
                                                 when the video ends
    cvfleet:batch:<id>:video:<i>:boxes     hash  detect chunk index -> its boxes (JSON), kept by a detect host
                                                 that cannot write the video's folder until the video's
                                                 home writes them to .tiles/ (CVFLEET_STORAGE=redis)
    cvfleet:stage                          list  work for the video's home (JSON): a chunk to stage (its
                                                 frames put in Redis, its detect task sent), or a video
                                                 whose boxes wait to go home (tasks/annotate/stager.py)
    cvfleet:stage:taken:<worker>           list  the items that worker's stager took and has not finished;
                                                 the watchdog puts them back when the worker goes silent
    cvfleet:frame:<sha256>                 str   a frame's JPEG bytes, as extracted; expires
    cvfleet:frame:<sha256>:holds           set   the staged chunks ("<batch>:<chunk>") holding that frame;
                                                 the frame is deleted when the last one reports

    cvfleet:sweeps                         zset  sweep id -> last submit time
    cvfleet:sweep:<id>                     hash  id, created, submitted, grid (JSON: data, fixed, sweep, space,
                                                 metric, mode, scheduler), prune, roots (JSON), storage
                                                 (redis|shared: where its trials' bytes go), files (JSON
                                                 {"dir", "files": {name: sha256}}: the user's data in
                                                 cvfleet:blob:*; null for a named set or shared storage)
    cvfleet:sweep:<id>:trials              zset  trial id -> index in the grid's product (x samples)
    cvfleet:sweep:<id>:trial:<tid>         hash  id, index, point, recipe (JSON), state, task_id, run, queued,
                                                 started, finished, worker, pid, epochs, val_accuracy,
                                                 best_val_accuracy, best_epoch, val_loss, loss, accuracy,
                                                 score (the grid's metric at the end), seconds, weights
                                                 ("redis:<its weights key>" or a directory on the shared root),
                                                 blas_threads, pruned_at, scheduler, median (median rule),
                                                 cutoff and rung_size (ASHA), error, attempts (which run of
                                                 its task trained it), resumed_from (the checkpoint's epoch
                                                 it started after; 0: from scratch), cancel (set by
                                                 `sweep cancel` on a running trial)
    cvfleet:sweep:<id>:trial:<tid>:epochs  list  one JSON object per finished epoch, appended as it ends (its
                                                 metrics, epoch, time (end, Unix s), pid)
    cvfleet:sweep:<id>:trial:<tid>:checkpoint  str  its latest checkpoint (.npz bytes, nn.checkpoint), replaced
                                                 each epoch by the run that owns the trial; dropped when it
                                                 is done or pruned (storage redis)
    cvfleet:sweep:<id>:trial:<tid>:weights hash  model.json, weights.npz, training.json (bytes) of a done
                                                 trial (storage redis; `sweep best --out` writes them out)
    cvfleet:sweep:<id>:leaderboard         zset  trial id -> final metric (done trials; read in the grid's mode)
    cvfleet:sweep:<id>:epoch:<k>           zset  trial id -> metric after epoch k (done trials: the
                                                 median-stopping rule reads these)
    cvfleet:sweep:<id>:rung:<k>            zset  trial id -> metric after epoch k, for every trial that reached
                                                 ASHA's rung at epoch k
    cvfleet:sweep:<id>:rung:<k>:decided    hash  trial id -> "promote|stop <rung size then> <top-1/eta cutoff>"

    cvfleet:blob:<sha256>                  str   a user's data file, by content, for sweeps on hosts that cannot
                                                 see it; RECORD_TTL from the last submit naming it, deleted
                                                 with the last sweep that names it

    cvfleet:attempts:<task id>             str   runs of one task (count_attempt); a trial's task id is
                                                 <sweep id>-<trial id>-<random>, so `sweep delete` finds them

A video moves queued -> extracting -> detecting -> labelling -> done | failed | cancelled (a retry
starts it again as run n + 1; the transitions are declared in `tasks.batch_records`); a trial
queued -> running -> done | pruned | failed | cancelled.
On shared storage (CVFLEET_STORAGE=shared) a sweep's checkpoints and weights are files, not keys:
$CVFLEET_DATA/sweeps/<id>/.checkpoints/<tid>.npz and $CVFLEET_DATA/sweeps/<id>/<tid>/ (tasks/trial.py).
"""

from __future__ import annotations

import os

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

from workers import config
from workers.app import app

PREFIX = "cvfleet:"
RECORD_TTL = 30 * 24 * 3600  # seconds a batch or sweep record is kept after its last update

_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """One client per process (created after a fork, never inherited).

    Commands retry with backoff for CVFLEET_REDIS_RETRY_SECONDS (two minutes), so a Redis restart
    (AOF reload) delays a task's bookkeeping instead of failing the task. A longer outage fails the
    task's Redis writes; the batch watchdog (`tasks.watchdog`) sends its work again later.
    """
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        cfg = config.load()
        _clients[pid] = redis.Redis.from_url(
            app.conf.broker_url,
            **cfg.redis_ssl_options(),  # rediss://: the server's certificate is checked against the fleet's CA
            decode_responses=True,
            socket_timeout=30,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries_for(cfg.redis_retry_seconds)),
            retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        )
    return _clients[pid]


_raw: dict = {}


def raw_client() -> redis.Redis:
    """A client of the same server as `client()`, with its settings, that returns bytes (frames)."""
    decoded = client()
    if _raw.get("of") is not decoded:
        pool = decoded.connection_pool
        kwargs = {**pool.connection_kwargs, "decode_responses": False}
        raw = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        _raw.update({"of": decoded, "raw": raw})
    return _raw["raw"]


def retries_for(seconds: float, base: float = 0.1, cap: float = 2.0) -> int:
    """How many retries of an exponential backoff (base, doubling, at most `cap` s each) span `seconds`."""
    n, waited, wait = 0, 0.0, base
    while waited < seconds:
        waited += min(wait, cap)
        wait *= 2
        n += 1
    return max(n, 1)


_scripts: dict = {}


def script(text: str):
    """A Lua script registered on the current client, once per client (a new client after a
    fork or a reconfiguration registers it again)."""
    r = client()
    cached = _scripts.get(text)
    if cached is None or cached[0] is not r:
        _scripts[text] = (r, r.register_script(text))
    return _scripts[text][1]


def key(*parts) -> str:
    return PREFIX + ":".join(str(p) for p in parts)


def count_attempt(task_id: str) -> int:
    """Count one more run of this task id; returns which run this is (1 the first time).

    Redis keeps no redelivery count, so a task that kills its worker every time (out of memory)
    would loop forever under late acks; this counter lets it give up and be recorded as failed.
    The counter outlives any redelivery (3 visibility timeouts) and no more.
    """
    k = key("attempts", task_id)
    pipe = client().pipeline()
    pipe.incr(k)
    pipe.expire(k, 3 * app.conf.visibility_timeout)
    n, _ = pipe.execute()
    return n


def forget_attempts(task_id: str) -> None:
    """A task that ended needs no counter: drop it, so Redis does not hold one per finished task."""
    client().delete(key("attempts", task_id))
