"""Annotation batches as Redis records: what was submitted, where each video stands, which detect
chunks wait, which are out, and which are done.

The keys and their fields are listed once, in `tasks.store`. A video moves queued -> extracting ->
detecting -> labelling -> done, or to failed (with a one-line reason) or cancelled. Those three are
final: a state change of a video that has ended, or that comes from an older run of it (a message
left from before a retry), changes nothing; only `retry` starts a video again, as run n + 1.
Every check-and-write is one Lua script, so two workers never both move a video on.

Detect chunks are not all queued at once. A video's chunks wait in its batch's `pending` list;
`dispatch_all` takes them out while fewer than `cap` chunks of all batches are in flight
(`inflight`, each with the time of its last news), from the batch with the fewest chunks left
first, and every chunk that ends sends the next. So the queue holds about one chunk per worker
process, and a small batch submitted behind a big one runs next instead of after it.
"""

from __future__ import annotations

import json
import time
import uuid

from tasks.store import RECORD_TTL, client, key, script

TERMINAL = ("done", "failed", "cancelled")
RUNNING = key("batches", "running")  # set of batch ids with a video not yet ended (the watchdog's list)
WORKERS = key("workers")  # hash worker name -> "processes last-seen-time"


def _field_args(fields: dict) -> list:
    """Fields as flat [name, value, ...] script arguments, dicts and lists as JSON."""
    return [x for k, v in fields.items() for x in (k, json.dumps(v) if isinstance(v, (dict, list)) else v)]


def _touch(pipe, *keys) -> None:
    for k in keys:
        pipe.expire(k, RECORD_TTL)


def _vk(batch_id: str, index, *rest) -> str:
    return key("batch", batch_id, "video", index, *rest)


def _bk(batch_id: str, *rest) -> str:
    return key("batch", batch_id, *rest)


def ref(index: int, chunk: int, run: int) -> str:
    """A chunk's name in the pending list and in flight: `video:chunk:run`."""
    return f"{index}:{chunk}:{run}"


def parse_ref(text: str) -> tuple[int, int, int]:
    index, chunk, run = text.split(":")
    return int(index), int(chunk), int(run)


# -- submission ------------------------------------------------------------------------------


def create_batch(
    videos: list[str],
    video_dirs: list[str],
    out: str,
    settings: dict,
    static: str | None,
    preview: bool,
    tiles_per_task: int | None,
    roots: list[str],
    static_ignore: str | None = None,
) -> str:
    batch_id = uuid.uuid4().hex[:12]
    now = time.time()
    pipe = client().pipeline()
    bk = _bk(batch_id)
    pipe.hset(
        bk,
        mapping={
            "id": batch_id,
            "created": now,
            "out": out,
            "settings": json.dumps(settings),
            "static": static or "",
            "static_ignore": static_ignore or "",
            "preview": int(preview),
            "tiles_per_task": tiles_per_task or 0,
            "roots": json.dumps(roots),
            "videos": len(videos),
        },
    )
    for i, (video, video_dir) in enumerate(zip(videos, video_dirs)):
        vk = _vk(batch_id, i)
        pipe.hset(
            vk,
            mapping={"index": i, "video": video, "video_dir": video_dir, "state": "queued", "run": 1, "updated": now},
        )
        _touch(pipe, vk)
    pipe.zadd(key("batches"), {batch_id: now})
    pipe.sadd(RUNNING, batch_id)
    _touch(pipe, bk)
    pipe.execute()
    return batch_id


def batch(batch_id: str) -> dict | None:
    data = client().hgetall(_bk(batch_id))
    if not data:
        return None
    for field in ("settings", "roots"):
        data[field] = json.loads(data[field])
    data["videos"] = int(data["videos"])
    data["preview"] = bool(int(data["preview"]))
    data["tiles_per_task"] = int(data["tiles_per_task"]) or None
    data["cancelled"] = float(data["cancelled"]) if data.get("cancelled") else None
    return data


def batch_ids(limit: int = 20) -> list[str]:
    """The newest batches first."""
    return client().zrevrange(key("batches"), 0, limit - 1)


def video(batch_id: str, index: int) -> dict | None:
    """A video's record (video, video_dir, state, run, ...) or None."""
    return client().hgetall(_vk(batch_id, index)) or None


def set_task_id(batch_id: str, index: int, field: str, task_id: str) -> None:
    """Remember the id of a video's queued prepare or label message (`batch cancel` revokes it)."""
    client().hset(_vk(batch_id, index), field, task_id)


# -- one video's state -----------------------------------------------------------------------

_UPDATE = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if not cur[1] then return 0 end
if ARGV[1] ~= '' and cur[2] ~= ARGV[1] then return 0 end
if cur[1] == 'done' or cur[1] == 'failed' or cur[1] == 'cancelled' then return 0 end
if ARGV[4] ~= '' and not string.find(',' .. ARGV[4] .. ',', ',' .. cur[1] .. ',', 1, true) then return 0 end
local state = nil
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'state' then state = ARGV[i + 1] end
end
redis.call('HSET', KEYS[1], 'updated', ARGV[3])
if state == 'done' or state == 'failed' or state == 'cancelled' then
  redis.call('HSET', KEYS[1], 'finished', ARGV[3])
  redis.call('DEL', KEYS[3], KEYS[4])
  if state == 'done' then redis.call('DEL', KEYS[2]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def update_video(batch_id: str, index: int, run: int | None = None, when: tuple = (), **fields) -> bool:
    """Set fields of a video that has not ended (of run `run`, and in one of the states `when`, if
    given); False if it changed nothing.

    A video that ends drops its chunk plan, and when done its per-chunk progress hash (one field per
    detect task), its tiles all counted as done."""
    args = _field_args(fields)
    keys = [_vk(batch_id, index), _vk(batch_id, index, "chunks"), _vk(batch_id, index, "plan")]
    keys.append(_vk(batch_id, index, "segments"))
    argv = ["" if run is None else run, RECORD_TTL, time.time(), ",".join(when), *args]
    return bool(script(_UPDATE)(keys, argv))


def fail_video(batch_id: str, index: int, reason: str, run: int | None = None) -> bool:
    return update_video(batch_id, index, run, state="failed", error=reason.splitlines()[0] if reason else "failed")


def gate(batch_id: str, index: int, run: int | None) -> bool:
    """Whether a task of this video (of run `run`, if given) should run: the batch is not cancelled,
    the video has not ended, and no retry started a newer run."""
    pipe = client().pipeline()
    pipe.hexists(_bk(batch_id), "cancelled")
    pipe.hmget(_vk(batch_id, index), "state", "run")
    cancelled, (state, current) = pipe.execute()
    if cancelled or state is None or state in TERMINAL:
        return False
    return run is None or str(run) == current


# -- detect chunks ---------------------------------------------------------------------------

_START_DETECTING = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if redis.call('HEXISTS', KEYS[5], 'cancelled') == 1 then return 0 end
if cur[1] ~= 'extracting' or cur[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
local n = tonumber(ARGV[4])
for c = 0, n - 1 do
  redis.call('HSET', KEYS[2], c, ARGV[6 + c])
  redis.call('RPUSH', KEYS[4], ARGV[5] .. ':' .. c .. ':' .. ARGV[1])
end
for i = 6 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'state', 'detecting', 'chunks', n, 'updated', ARGV[2])
redis.call('HDEL', KEYS[1], 'label_sent', 'label_sends', 'prefix', 'streaming')
for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ARGV[3]) end
return 1
"""


def start_detecting(batch_id: str, index: int, run: int, chunks: list, **fields) -> bool:
    """Record the video's chunk plan and queue its chunks in the batch's pending list; False (and
    nothing written) if the video is not extracting in this run, or the batch was cancelled."""
    args = [run, time.time(), RECORD_TTL, len(chunks), index, *(json.dumps(c) for c in chunks)]
    args += _field_args(fields)
    keys = [
        _vk(batch_id, index),
        _vk(batch_id, index, "plan"),
        _vk(batch_id, index, "chunks"),
        _bk(batch_id, "pending"),
        _bk(batch_id),
    ]
    return bool(script(_START_DETECTING)(keys, args))


_DISPATCH_ALL = """
local room = tonumber(ARGV[1])
local batches = {}
for _, b in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local bk = ARGV[3] .. b
  room = room - redis.call('ZCARD', bk .. ':inflight')
  local left = redis.call('LLEN', bk .. ':pending')
  if left > 0 and redis.call('HEXISTS', bk, 'cancelled') == 0 then
    table.insert(batches, {b, left, tonumber(redis.call('HGET', bk, 'created') or '0')})
  end
end
table.sort(batches, function(x, y) if x[2] ~= y[2] then return x[2] < y[2] end return x[3] < y[3] end)
local out = {}
for _, entry in ipairs(batches) do
  if room <= 0 then break end
  local bk = ARGV[3] .. entry[1]
  while room > 0 do
    local ref = redis.call('LPOP', bk .. ':pending')
    if not ref then break end
    local i, c, r = string.match(ref, '^(%d+):(%d+):(%d+)$')
    local vk = bk .. ':video:' .. i
    local v = redis.call('HMGET', vk, 'state', 'run', 'video_dir', 'cache')
    if v[1] == 'detecting' and v[2] == r then
      local jobs = redis.call('HGET', vk .. ':plan', c)
      if jobs then
        redis.call('ZADD', bk .. ':inflight', ARGV[2], ref)
        redis.call('EXPIRE', bk .. ':inflight', ARGV[4])
        table.insert(out, entry[1])
        table.insert(out, ref)
        table.insert(out, v[3])
        table.insert(out, v[4] or '')
        table.insert(out, jobs)
        room = room - 1
      end
    end
  end
end
return out
"""


def dispatch_all(cap: int) -> list[tuple[str, str, str, str, list]]:
    """Fill the fleet: take pending chunks out until `cap` chunks of all running batches are in
    flight, the batch with the fewest chunks left first (the oldest on a tie). [(batch id, ref,
    video_dir, tile cache dir, jobs), ...] to send."""
    flat = script(_DISPATCH_ALL)([RUNNING], [cap, time.time(), key("batch", ""), RECORD_TTL])
    return [(flat[k], flat[k + 1], flat[k + 2], flat[k + 3], json.loads(flat[k + 4])) for k in range(0, len(flat), 5)]


def sent(batch_id: str, chunk_ref: str, task_id: str) -> int:
    """Record the task id a chunk went out under; returns how many times it was sent."""
    pipe = client().pipeline()
    pipe.hset(_bk(batch_id, "tasks"), chunk_ref, task_id)
    pipe.hincrby(_bk(batch_id, "sends"), chunk_ref, 1)
    _touch(pipe, _bk(batch_id, "tasks"), _bk(batch_id, "sends"))
    return pipe.execute()[1]


def chunk_dropped(batch_id: str, chunk_ref: str) -> None:
    """A chunk that will not report (its video ended, or it failed it): out of flight, so it no longer
    takes a place of its batch's share."""
    pipe = client().pipeline()
    pipe.zrem(_bk(batch_id, "inflight"), chunk_ref)
    pipe.hdel(_bk(batch_id, "tasks"), chunk_ref)
    pipe.execute()


def chunk_started(batch_id: str, chunk_ref: str) -> None:
    """News of a chunk in flight (a worker took it): its stall clock starts again."""
    client().zadd(_bk(batch_id, "inflight"), {chunk_ref: time.time()}, xx=True)


_CHUNK_DONE = """
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('HDEL', KEYS[4], ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'chunks', 'label_sent', 'prefix')
if v[1] ~= 'detecting' or v[2] ~= ARGV[4] then return {0, 0, 0} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[1], 'updated', ARGV[5])
local old = tonumber(v[5] or '0')
local p = old
while redis.call('HEXISTS', KEYS[2], p) == 1 do p = p + 1 end
if p ~= old then redis.call('HSET', KEYS[1], 'prefix', p) end
if v[3] and redis.call('HLEN', KEYS[2]) >= tonumber(v[3]) and not v[4] then
  redis.call('HSET', KEYS[1], 'label_sent', ARGV[5])
  return {1, old, p}
end
return {0, old, p}
"""


def chunk_done(batch_id: str, index: int, chunk: int, tiles: int, run: int | None = None) -> tuple[bool, range]:
    """Count a chunk's tiles as done and take it out of flight. Returns (last, newly): `last` is True
    when it was the video's last chunk and the caller is the one to send `label` (exactly one caller
    gets True; never while the plan is still streaming); `newly` the chunk numbers that this report
    joined to the done prefix 0..k (each number is in exactly one caller's `newly`)."""
    if run is None:
        run = int(client().hget(_vk(batch_id, index), "run") or 1)
    keys = [_vk(batch_id, index), _vk(batch_id, index, "chunks"), _bk(batch_id, "inflight"), _bk(batch_id, "tasks")]
    args = [chunk, tiles, ref(index, chunk, run), run, time.time(), RECORD_TTL]
    last, old, new = script(_CHUNK_DONE)(keys, args)
    return bool(last), range(int(old), int(new))


# -- streaming: chunks planned while frames land -----------------------------------------------

_START_STREAM = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if redis.call('HEXISTS', KEYS[5], 'cancelled') == 1 then return 0 end
if cur[1] ~= 'extracting' or cur[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[1], 'chunks', 'label_sent', 'label_sends', 'prefix', 'tiles_reused')
redis.call('HSET', KEYS[1], 'state', 'detecting', 'streaming', ARGV[4], 'planned', 0, 'updated', ARGV[2])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def start_streaming(batch_id: str, index: int, run: int, segments: int, **fields) -> bool:
    """The video goes detecting with an open plan, its frames extracted by `segments` tasks that add
    chunks as frames land (`add_chunks`) until the last one closes the plan (`close_plan`). False
    (nothing written) if the video is not extracting in this run, or the batch was cancelled."""
    args = [run, time.time(), RECORD_TTL, segments]
    args += _field_args(fields)
    keys = [
        _vk(batch_id, index),
        _vk(batch_id, index, "plan"),
        _vk(batch_id, index, "chunks"),
        _vk(batch_id, index, "segments"),
        _bk(batch_id),
    ]
    return bool(script(_START_STREAM)(keys, args))


_ADD_CHUNKS = """
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming')
if redis.call('HEXISTS', KEYS[4], 'cancelled') == 1 then return -1 end
if v[1] ~= 'detecting' or v[2] ~= ARGV[1] or not v[3] then return -1 end
local n = tonumber(ARGV[6])
local first = redis.call('HINCRBY', KEYS[1], 'planned', n) - n
for c = 0, n - 1 do
  redis.call('HSET', KEYS[2], first + c, ARGV[7 + c])
  redis.call('RPUSH', KEYS[3], ARGV[4] .. ':' .. (first + c) .. ':' .. ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'tiles_reused', ARGV[5])
redis.call('HSET', KEYS[1], 'updated', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return first
"""


def add_chunks(batch_id: str, index: int, run: int, chunks: list, reused: int = 0) -> int | None:
    """Plan `chunks` (lists of jobs) of a streaming video under the next chunk numbers and queue them
    in the batch's pending list; `reused` tiles were found already detected. Returns the first
    number, or None when the video no longer streams in this run (ended, retried, cancelled)."""
    keys = [_vk(batch_id, index), _vk(batch_id, index, "plan"), _bk(batch_id, "pending"), _bk(batch_id)]
    args = [run, time.time(), RECORD_TTL, index, reused, len(chunks), *(json.dumps(c) for c in chunks)]
    first = int(script(_ADD_CHUNKS)(keys, args))
    return None if first < 0 else first


_SEGMENT_DONE = """
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming')
if v[1] ~= 'detecting' or v[2] ~= ARGV[1] or not v[3] then return -1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'updated', ARGV[4])
if redis.call('HLEN', KEYS[2]) >= tonumber(v[3]) then return 1 end
return 0
"""


def segment_done(batch_id: str, index: int, run: int, segment: int, part: dict) -> bool | None:
    """Keep a segment's extraction result; True when every segment is done and the plan still open
    (the caller joins them and closes the plan: `close_plan` lets one caller through), None if the
    video no longer streams."""
    keys = [_vk(batch_id, index), _vk(batch_id, index, "segments")]
    flag = int(script(_SEGMENT_DONE)(keys, [run, segment, json.dumps(part), time.time(), RECORD_TTL]))
    return None if flag < 0 else bool(flag)


def segments(batch_id: str, index: int) -> dict:
    """{segment number: its extraction result} of the segments done so far."""
    return {int(k): json.loads(v) for k, v in client().hgetall(_vk(batch_id, index, "segments")).items()}


_CLOSE_PLAN = """
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming', 'planned', 'label_sent')
if v[1] ~= 'detecting' or v[2] ~= ARGV[1] or not v[3] then return 0 end
redis.call('HDEL', KEYS[1], 'streaming')
redis.call('HSET', KEYS[1], 'chunks', v[4], 'updated', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('HLEN', KEYS[2]) >= tonumber(v[4]) and not v[5] then
  redis.call('HSET', KEYS[1], 'label_sent', ARGV[2])
  return 2
end
return 1
"""


def close_plan(batch_id: str, index: int, run: int, **fields) -> bool | None:
    """Every frame is on disk and every chunk planned: the plan's size is final. True when every
    chunk is already done and the caller is the one to send `label`; False when the last chunk will;
    None if the video no longer streams in this run."""
    args = [run, time.time()]
    args += _field_args(fields)
    flag = int(script(_CLOSE_PLAN)([_vk(batch_id, index), _vk(batch_id, index, "chunks")], args))
    return None if flag == 0 else flag == 2


def plan(batch_id: str, index: int, chunks=None) -> dict:
    """{chunk number: jobs} of the video's plan: every chunk, or those numbered in `chunks`."""
    k = _vk(batch_id, index, "plan")
    if chunks is None:
        return {int(c): json.loads(j) for c, j in client().hgetall(k).items()}
    chunks = list(chunks)
    values = client().hmget(k, chunks) if chunks else []
    return {c: json.loads(j) for c, j in zip(chunks, values) if j}


_RESTART = """
local v = redis.call('HMGET', KEYS[1], 'state', 'run')
if v[1] ~= 'detecting' or v[2] ~= ARGV[1] then return 0 end
local run = tonumber(v[2]) + 1
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[1], 'chunks', 'label_sent', 'label_sends', 'prefix', 'streaming', 'planned', 'tiles_reused')
redis.call('HSET', KEYS[1], 'state', 'queued', 'run', run, 'updated', ARGV[2], ARGV[3], ARGV[4])
return run
"""


def restart_video(batch_id: str, index: int, run: int, field: str, value) -> int | None:
    """Start a detecting video again as run n + 1 with `field` set (its chunks of run n are ignored
    from now on); the new run, or None if the video is not detecting in run `run`."""
    keys = [_vk(batch_id, index), _vk(batch_id, index, "plan"), _vk(batch_id, index, "chunks")]
    keys.append(_vk(batch_id, index, "segments"))
    new = int(script(_RESTART)(keys, [run, time.time(), field, value]))
    return new or None


def label_sent(batch_id: str, index: int, run: int) -> int:
    """Mark a (re)sent label of this run; returns how many times it was sent."""
    pipe = client().pipeline()
    pipe.hset(_vk(batch_id, index), "label_sent", time.time())
    pipe.hincrby(_vk(batch_id, index), "label_sends", 1)
    return pipe.execute()[1]


# -- steering: cancel, retry -----------------------------------------------------------------

_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancelled', ARGV[1])
local ids = redis.call('HVALS', KEYS[4])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for i = 0, tonumber(ARGV[3]) - 1 do
  local vk = ARGV[2] .. i
  local v = redis.call('HMGET', vk, 'state', 'task_id', 'label_task_id', 'label_sent')
  if v[1] and v[1] ~= 'done' and v[1] ~= 'failed' and v[1] ~= 'cancelled' then
    redis.call('HSET', vk, 'state', 'cancelled', 'finished', ARGV[1], 'updated', ARGV[1],
               'error', 'cancelled while ' .. v[1])
    redis.call('DEL', vk .. ':plan', vk .. ':segments')
    if v[1] == 'queued' and v[2] then table.insert(ids, v[2]) end
    if v[4] and v[3] then table.insert(ids, v[3]) end
  end
end
return ids
"""


def cancel(batch_id: str) -> list[str] | None:
    """Cancel the batch: no chunk is sent any more, every video not ended is `cancelled`. Returns the
    ids of its messages that may still wait in a queue (to revoke), or None if there is no batch."""
    info = batch(batch_id)
    if info is None:
        return None
    keys = [_bk(batch_id), _bk(batch_id, "pending"), _bk(batch_id, "inflight"), _bk(batch_id, "tasks")]
    ids = script(_CANCEL)(keys, [time.time(), _vk(batch_id, ""), info["videos"]])
    client().srem(RUNNING, batch_id)
    return ids


_RETRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HDEL', KEYS[1], 'cancelled')
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local out = {}
for i = 0, tonumber(ARGV[3]) - 1 do
  local vk = ARGV[2] .. i
  local v = redis.call('HMGET', vk, 'state', 'run')
  if v[1] == 'failed' or v[1] == 'cancelled' then
    local run = tonumber(v[2] or '1') + 1
    redis.call('HSET', vk, 'state', 'queued', 'run', run, 'updated', ARGV[1])
    redis.call('HDEL', vk, 'error', 'finished', 'label_sent', 'label_sends', 'task_id', 'label_task_id',
               'chunks', 'tiles_reused', 'prepare_sends', 'streaming', 'planned', 'prefix', 'extract_sends')
    redis.call('DEL', vk .. ':plan', vk .. ':chunks', vk .. ':segments')
    table.insert(out, i)
    table.insert(out, run)
  end
end
return out
"""


def retry(batch_id: str) -> list[tuple[int, int]] | None:
    """Start the batch's failed and cancelled videos again (each as its next run): [(index, run)] to
    queue a `prepare` for, or None if there is no batch. Done videos are left as they are."""
    info = batch(batch_id)
    if info is None:
        return None
    keys = [
        _bk(batch_id),
        _bk(batch_id, "pending"),
        _bk(batch_id, "inflight"),
        _bk(batch_id, "tasks"),
        _bk(batch_id, "sends"),
    ]
    flat = script(_RETRY)(keys, [time.time(), _vk(batch_id, ""), info["videos"]])
    if flat:
        client().sadd(RUNNING, batch_id)
    return [(int(flat[k]), int(flat[k + 1])) for k in range(0, len(flat), 2)]


# -- what the watchdog reads -----------------------------------------------------------------


def running_batches() -> list[str]:
    return sorted(client().smembers(RUNNING))


def inflight(batch_id: str) -> list[tuple[str, float]]:
    """[(chunk ref, time of its last news)] of the batch's chunks in flight, oldest news first."""
    return client().zrange(_bk(batch_id, "inflight"), 0, -1, withscores=True)


def sends(batch_id: str, chunk_ref: str) -> int:
    return int(client().hget(_bk(batch_id, "sends"), chunk_ref) or 0)


def plan_jobs(batch_id: str, index: int, chunk: int) -> list | None:
    text = client().hget(_vk(batch_id, index, "plan"), chunk)
    return json.loads(text) if text else None


def chunks_done(batch_id: str, index: int) -> int:
    return client().hlen(_vk(batch_id, index, "chunks"))


def touch_inflight(batch_id: str, chunk_ref: str) -> None:
    client().zadd(_bk(batch_id, "inflight"), {chunk_ref: time.time()})


def ended(batch_id: str) -> None:
    """Every video of the batch ended: drop its dispatch keys and take it off the watchdog's list."""
    pipe = client().pipeline()
    pipe.srem(RUNNING, batch_id)
    pipe.delete(_bk(batch_id, "pending"), _bk(batch_id, "inflight"), _bk(batch_id, "tasks"), _bk(batch_id, "sends"))
    pipe.execute()


def heartbeat(worker: str, processes: int) -> None:
    """A worker says it is alive and how many pool processes it has (dispatch sizes by them)."""
    client().hset(WORKERS, worker, f"{processes} {time.time()}")


def processes(fresh: float) -> int:
    """Pool processes of the workers heard from in the last `fresh` seconds (at least 1)."""
    now, total = time.time(), 0
    for value in client().hvals(WORKERS):
        n, seen = value.split()
        if now - float(seen) <= fresh:
            total += int(n)
    return max(total, 1)


def progress(batch_id: str) -> dict | None:
    """The batch and, per video, state, frames, tiles done/total, error and summary."""
    info = batch(batch_id)
    if info is None:
        return None
    r = client()
    pipe = r.pipeline()
    for i in range(info["videos"]):
        pipe.hgetall(_vk(batch_id, i))
        pipe.hvals(_vk(batch_id, i, "chunks"))
    replies = pipe.execute()
    videos = []
    for i in range(info["videos"]):
        v, chunks = replies[2 * i], replies[2 * i + 1]
        for field in ("frames", "tiles", "tiles_reused"):
            v[field] = int(v.get(field) or 0)
        done = v["tiles_reused"] + sum(int(c) for c in chunks)
        v["tiles_done"] = v["tiles"] if v["state"] == "done" else min(done, v["tiles"])
        if v.get("summary"):
            v["summary"] = json.loads(v["summary"])
        videos.append(v)
    info["video_states"] = videos
    info["finished"] = all(v["state"] in TERMINAL for v in videos)
    info["failed"] = sum(v["state"] == "failed" for v in videos)
    info["cancelled_videos"] = sum(v["state"] == "cancelled" for v in videos)
    return info
