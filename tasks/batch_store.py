"""Annotation batches as Redis records: what was submitted, where each video stands, which detect
chunks wait, which are out, and which are done. Every read and write of a batch goes through here.

The keys and their fields are listed once, in `tasks.store`; the states, the declared transitions
and the fields of one run, in `tasks.batch_records`. Each transition is one Lua script that checks
the video's run and state and writes, so two workers never both move a video on; the scripts take
the states and field lists from Python as arguments and name their arguments at the top.

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

from tasks.batch_records import (
    ACTIVE,
    PLAN_FIELDS,
    RUN_FIELDS,
    RUN_KEYS,
    TERMINAL,
    TRANSITIONS,
    BatchProgress,
    BatchRecord,
    ChunkRef,
    VideoRecord,
    VideoRun,
    VideoState,
    dropped_on,
    lua_list,
)
from tasks.store import RECORD_TTL, client, key, raw_client, script

RUNNING = key("batches", "running")  # set of batch ids with a video not yet ended (the watchdog's list)
WORKERS = key("workers")  # hash worker name -> "processes last-seen-time"
WATCHDOG = key("watchdog")  # which worker looks after the batches this interval

# Helpers every script below starts with: comma lists are how Python passes states and fields.
_LUA = """
local function member(list, x)
  return x ~= nil and x ~= false and string.find(',' .. list .. ',', ',' .. x .. ',', 1, true) ~= nil
end
local function split(list)
  local out = {}
  for x in string.gmatch(list, '[^,]+') do table.insert(out, x) end
  return out
end
local function hset_pairs(key, first)
  for i = first, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
"""


def _run(text: str):
    return script(_LUA + text)


def _field_args(fields: dict) -> list:
    """Fields as flat [name, value, ...] script arguments, dicts and lists as JSON."""
    return [x for k, v in fields.items() for x in (k, json.dumps(v) if isinstance(v, (dict, list)) else v)]


def _bk(batch_id: str, *rest) -> str:
    return key("batch", batch_id, *rest)


def _vk(run: VideoRun, *rest) -> str:
    return key("batch", run.batch, "video", run.index, *rest)


def _run_keys(run: VideoRun) -> list[str]:
    return [_vk(run, name) for name in RUN_KEYS]


# -- submission and reading --------------------------------------------------------------------


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
    """Record a batch and its videos (each queued, run 1); returns the new batch id."""
    now = time.time()
    info = BatchRecord(
        id=uuid.uuid4().hex[:12],
        created=now,
        out=out,
        settings=settings,
        roots=roots,
        videos=len(videos),
        static=static or "",
        static_ignore=static_ignore or "",
        preview=preview,
        tiles_per_task=tiles_per_task,
    )
    pipe = client().pipeline()
    pipe.hset(_bk(info.id), mapping=info.hash())
    for i, (video, video_dir) in enumerate(zip(videos, video_dirs)):
        vk = _vk(VideoRun(info.id, i, 1))
        fields = {"index": i, "video": video, "video_dir": video_dir, "state": VideoState.QUEUED, "run": 1}
        pipe.hset(vk, mapping={**fields, "updated": now})
        pipe.expire(vk, RECORD_TTL)
    pipe.zadd(key("batches"), {info.id: now})
    pipe.sadd(RUNNING, info.id)
    pipe.expire(_bk(info.id), RECORD_TTL)
    pipe.execute()
    return info.id


def batch(batch_id: str) -> BatchRecord | None:
    data = client().hgetall(_bk(batch_id))
    return BatchRecord.parse(data) if data else None


def batch_ids(limit: int = 20) -> list[str]:
    """The newest batches first."""
    return client().zrevrange(key("batches"), 0, limit - 1)


def video(batch_id: str, index: int) -> VideoRecord | None:
    data = client().hgetall(key("batch", batch_id, "video", index))
    return VideoRecord.parse(batch_id, data) if data else None


def progress(batch_id: str) -> BatchProgress | None:
    """The batch and every video's record, with its tiles done so far (reused + chunks reported)."""
    info = batch(batch_id)
    if info is None:
        return None
    pipe = client().pipeline()
    for i in range(info.videos):
        pipe.hgetall(key("batch", batch_id, "video", i))
        pipe.hvals(key("batch", batch_id, "video", i, "chunks"))
    replies = pipe.execute()
    videos = []
    for i in range(info.videos):
        v = VideoRecord.parse(batch_id, replies[2 * i])
        done = v.tiles_reused + sum(int(c) for c in replies[2 * i + 1])
        v.tiles_done = v.tiles if v.state is VideoState.DONE else min(done, v.tiles)
        videos.append(v)
    return BatchProgress(info, videos)


def set_task_id(run: VideoRun, field: str, task_id: str) -> None:
    """Remember the id of a video's queued prepare or label message (`batch cancel` revokes it)."""
    client().hset(_vk(run), field, task_id)


# -- the declared transitions of one video -------------------------------------------------------

_MOVE = """
-- KEYS[1] the video's hash; KEYS[2..] keys dropped when the move ends the run
local run, from, now, ttl, ends = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if not cur[1] or cur[2] ~= run or not member(from, cur[1]) then return 0 end
hset_pairs(KEYS[1], 6)
redis.call('HSET', KEYS[1], 'updated', now)
if ends == '1' then
  redis.call('HSET', KEYS[1], 'finished', now)
  for k = 2, #KEYS do redis.call('DEL', KEYS[k]) end
end
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""


def move(run: VideoRun, transition: str, **fields) -> bool:
    """Make a declared transition (`batch_records.TRANSITIONS`) of this run, with `fields` written
    alongside; False (nothing written) if the video is in another run or a state it may not leave
    that way. A move that ends the run drops the keys `dropped_on` names."""
    sources, target = TRANSITIONS[transition]
    drop = [_vk(run, name) for name in dropped_on(target)]
    args = [run.run, lua_list(sources), time.time(), RECORD_TTL, int(target in TERMINAL)]
    return bool(_run(_MOVE)([_vk(run), *drop], [*args, "state", target, *_field_args(fields)]))


def note(run: VideoRun, **fields) -> bool:
    """Write bookkeeping fields (no change of state) of a run that has not ended."""
    args = [run.run, lua_list(ACTIVE), time.time(), RECORD_TTL, 0]
    return bool(_run(_MOVE)([_vk(run)], [*args, *_field_args(fields)]))


def fail(run: VideoRun, reason: str) -> bool:
    """The run ends failed, with the first line of `reason` as its error."""
    return move(run, "fail", error=reason.splitlines()[0] if reason else "failed")


def finish(run: VideoRun, summary: dict, **fields) -> bool:
    return move(run, "finish", summary=summary, **fields)


def gate(run: VideoRun) -> bool:
    """Whether a task of this run should run: the batch is not cancelled, the video has not ended,
    and no retry started a newer run."""
    pipe = client().pipeline()
    pipe.hexists(_bk(run.batch), "cancelled")
    pipe.hmget(_vk(run), "state", "run")
    cancelled, (state, current) = pipe.execute()
    return not cancelled and state is not None and state not in TERMINAL and str(run.run) == current


_START_PLAN = """
-- KEYS[1] video, KEYS[2] batch, KEYS[3] batch's pending, KEYS[4] the run's plan, KEYS[5..] its other keys
local run, from, to, clear, now, ttl, index = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n = tonumber(ARGV[8])
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if redis.call('HEXISTS', KEYS[2], 'cancelled') == 1 then return 0 end
if cur[2] ~= run or not member(from, cur[1]) then return 0 end
for k = 4, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('HDEL', KEYS[1], unpack(split(clear)))
for c = 0, n - 1 do
  redis.call('HSET', KEYS[4], c, ARGV[9 + c])
  redis.call('RPUSH', KEYS[3], index .. ':' .. c .. ':' .. run)
end
hset_pairs(KEYS[1], 9 + n)
redis.call('HSET', KEYS[1], 'state', to, 'updated', now)
for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], ttl) end
return 1
"""


def _start_plan(run: VideoRun, jobs: list, /, **fields) -> bool:
    sources, target = TRANSITIONS["detect"]
    others = [_vk(run, name) for name in RUN_KEYS if name != "plan"]
    keys = [_vk(run), _bk(run.batch), _bk(run.batch, "pending"), _vk(run, "plan"), *others]
    args = [run.run, lua_list(sources), target, ",".join(PLAN_FIELDS), time.time(), RECORD_TTL, run.index]
    args += [len(jobs), *(json.dumps(c) for c in jobs)]
    return bool(_run(_START_PLAN)(keys, [*args, *_field_args(fields)]))


def start_detecting(run: VideoRun, chunks: list, /, **fields) -> bool:
    """extracting -> detecting with the whole plan: the chunks are recorded and queued in the
    batch's pending list. False (nothing written) if the video is not extracting in this run, or the
    batch was cancelled."""
    return _start_plan(run, chunks, chunks=len(chunks), **fields)


def start_streaming(run: VideoRun, segments: int, **fields) -> bool:
    """extracting -> detecting with an open plan: `segments` extract tasks add chunks as frames land
    (`add_chunks`) until the last one closes the plan (`close_plan`). False as `start_detecting`."""
    return _start_plan(run, [], streaming=segments, planned=0, **fields)


_RESTART = """
-- KEYS[1] video, KEYS[2..] the run's keys
local run, from, to, clear, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HMGET', KEYS[1], 'state', 'run')
if cur[2] ~= run or not member(from, cur[1]) then return 0 end
for k = 2, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('HDEL', KEYS[1], unpack(split(clear)))
local next = tonumber(run) + 1
redis.call('HSET', KEYS[1], 'state', to, 'run', next, 'updated', now)
hset_pairs(KEYS[1], 6)
return next
"""


def restart(run: VideoRun, **fields) -> VideoRun | None:
    """detecting -> queued as run n + 1, with `fields` set (its chunks of run n are ignored from now
    on); the new run, or None if the video is not detecting in run `run`."""
    sources, target = TRANSITIONS["restart"]
    args = [run.run, lua_list(sources), target, ",".join(PLAN_FIELDS), time.time(), *_field_args(fields)]
    new = int(_run(_RESTART)([_vk(run), *_run_keys(run)], args))
    return run.next() if new else None


# -- detect chunks -------------------------------------------------------------------------------

_DISPATCH_ALL = """
-- KEYS[1] the running batches
local room, now, prefix, ttl, detecting = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local batches = {}
for _, b in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local bk = prefix .. b
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
  local bk = prefix .. entry[1]
  while room > 0 do
    local ref = redis.call('LPOP', bk .. ':pending')
    if not ref then break end
    local i, c, r = string.match(ref, '^(%d+):(%d+):(%d+)$')
    local vk = bk .. ':video:' .. i
    local v = redis.call('HMGET', vk, 'state', 'run', 'video_dir', 'cache')
    if v[1] == detecting and v[2] == r then
      local jobs = redis.call('HGET', vk .. ':plan', c)
      if jobs then
        redis.call('ZADD', bk .. ':inflight', now, ref)
        redis.call('EXPIRE', bk .. ':inflight', ttl)
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


def dispatch_all(cap: int) -> list[tuple[ChunkRef, str, str, list]]:
    """Fill the fleet: take pending chunks out until `cap` chunks of all running batches are in
    flight, the batch with the fewest chunks left first (the oldest on a tie). [(chunk, video_dir,
    tile cache dir, jobs), ...] to send."""
    args = [cap, time.time(), key("batch", ""), RECORD_TTL, VideoState.DETECTING]
    flat = _run(_DISPATCH_ALL)([RUNNING], args)
    return [
        (ChunkRef.parse(flat[k], flat[k + 1]), flat[k + 2], flat[k + 3], json.loads(flat[k + 4]))
        for k in range(0, len(flat), 5)
    ]


def sent(chunk: ChunkRef, task_id: str) -> int:
    """Record the task id a chunk went out under; returns how many times it was sent."""
    tasks, sends = _bk(chunk.video.batch, "tasks"), _bk(chunk.video.batch, "sends")
    pipe = client().pipeline()
    pipe.hset(tasks, chunk.name, task_id)
    pipe.hincrby(sends, chunk.name, 1)
    pipe.expire(tasks, RECORD_TTL)
    pipe.expire(sends, RECORD_TTL)
    return pipe.execute()[1]


def chunk_dropped(chunk: ChunkRef) -> None:
    """A chunk that will not report (its video ended, or it failed it): out of flight, so it no longer
    takes a place of its batch's share."""
    pipe = client().pipeline()
    pipe.zrem(_bk(chunk.video.batch, "inflight"), chunk.name)
    pipe.hdel(_bk(chunk.video.batch, "tasks"), chunk.name)
    pipe.execute()


def chunk_started(chunk: ChunkRef) -> None:
    """News of a chunk in flight (a worker took it): its stall clock starts again."""
    client().zadd(_bk(chunk.video.batch, "inflight"), {chunk.name: time.time()}, xx=True)


def touch_inflight(chunk: ChunkRef) -> None:
    """The chunk is in flight as of now (sent again by the watchdog)."""
    client().zadd(_bk(chunk.video.batch, "inflight"), {chunk.name: time.time()})


_CHUNK_DONE = """
-- KEYS[1] video, KEYS[2] its chunks done, KEYS[3] batch's inflight, KEYS[4] batch's tasks,
-- KEYS[5] the video's boxes waiting to go home
local chunk, tiles, name, run, now, ttl, detecting = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local boxes, frame_prefix, holder = ARGV[8], ARGV[9], ARGV[10]
redis.call('ZREM', KEYS[3], name)
redis.call('HDEL', KEYS[4], name)
for i = 11, #ARGV do
  local frame = frame_prefix .. ARGV[i]
  redis.call('SREM', frame .. ':holds', holder)
  if redis.call('SCARD', frame .. ':holds') == 0 then redis.call('DEL', frame) end
end
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'chunks', 'label_sent', 'prefix')
if v[1] ~= detecting or v[2] ~= run then return {0, 0, 0} end
if boxes ~= '' then
  redis.call('HSET', KEYS[5], chunk, boxes)
  redis.call('EXPIRE', KEYS[5], ttl)
end
redis.call('HSET', KEYS[2], chunk, tiles)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HSET', KEYS[1], 'updated', now)
local old = tonumber(v[5] or '0')
local p = old
while redis.call('HEXISTS', KEYS[2], p) == 1 do p = p + 1 end
if p ~= old then redis.call('HSET', KEYS[1], 'prefix', p) end
if v[3] and redis.call('HLEN', KEYS[2]) >= tonumber(v[3]) and not v[4] then
  redis.call('HSET', KEYS[1], 'label_sent', now)
  return {1, old, p}
end
return {0, old, p}
"""


def chunk_done(chunk: ChunkRef, tiles: int, boxes: dict | None = None, frames=()) -> tuple[bool, range]:
    """Count a chunk's tiles as done and take it out of flight. Returns (last, newly): `last` is True
    when it was the video's last chunk and the caller is the one to send `label` (exactly one caller
    gets True; never while the plan is still streaming); `newly` the chunk numbers that this report
    joined to the done prefix 0..k (each number is in exactly one caller's `newly`).

    From a host that cannot write the video's folder, `boxes` (its `detect_jobs` result) are kept in
    the same step, so a chunk counted done always has its boxes somewhere, until the video's home
    takes them (`take_boxes`); `frames` (content keys) are released, each deleted once no staged
    chunk holds it."""
    run, batch_id = chunk.video, chunk.video.batch
    keys = [_vk(run), _vk(run, "chunks"), _bk(batch_id, "inflight"), _bk(batch_id, "tasks")]
    keys.append(_vk(run, "boxes"))
    args = [chunk.number, tiles, chunk.name, run.run, time.time(), RECORD_TTL, VideoState.DETECTING]
    args += [json.dumps(boxes) if boxes is not None else "", key("frame", ""), _holder(chunk), *frames]
    last, old, new = _run(_CHUNK_DONE)(keys, args)
    return bool(last), range(int(old), int(new))


def take_boxes(run: VideoRun) -> dict[int, dict]:
    """{chunk number: boxes} that detect hosts kept in Redis for the video's home to write."""
    return {int(c): json.loads(b) for c, b in client().hgetall(_vk(run, "boxes")).items()}


def boxes_home(run: VideoRun, chunks) -> None:
    """Those chunks' boxes are on the video's disk now: Redis holds them no more."""
    chunks = list(chunks)
    if chunks:
        client().hdel(_vk(run, "boxes"), *chunks)


_CLAIM_LABELS = """
-- KEYS[1] video
local run, detecting = ARGV[1], ARGV[2]
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'prefix', 'labelled')
if v[1] ~= detecting or v[2] ~= run then return {0, 0} end
local p, l = tonumber(v[3] or '0'), tonumber(v[4] or '0')
if p > l then redis.call('HSET', KEYS[1], 'labelled', p) end
return {l, math.max(p, l)}
"""


def claim_labels(run: VideoRun) -> range:
    """The chunk numbers of the done prefix that nobody has labelled early yet; each number goes to
    exactly one caller (the video's home, which writes those frames' labels)."""
    first, stop = _run(_CLAIM_LABELS)([_vk(run)], [run.run, VideoState.DETECTING])
    return range(int(first), int(stop))


# -- frames through Redis (CVFLEET_STORAGE=redis) -------------------------------------------------

STAGE = key("stage")  # list: chunks to stage, and videos whose boxes wait to go home (JSON items)


def _holder(chunk: ChunkRef) -> str:
    return f"{chunk.video.batch}:{chunk.name}"


def stage(item: dict) -> None:
    """Queue work for the video's home (`tasks.annotate.stager`)."""
    client().rpush(STAGE, json.dumps(item))


def next_staged(owner: str, timeout: float) -> tuple[dict, str] | None:
    """The next item for the video's home, waiting up to `timeout` seconds: moved onto `owner`'s
    taken list, where it stays until `staged_done`, so a stager that dies with it loses nothing
    (`recover_staged`). (item, its raw text) or None."""
    raw = client().blmove(STAGE, key("stage", "taken", owner), timeout, "LEFT", "RIGHT")
    return (json.loads(raw), raw) if raw else None


def staged_done(owner: str, raw: str) -> None:
    client().lrem(key("stage", "taken", owner), 1, raw)


def recover_staged(fresh: float) -> int:
    """Items taken by stagers of workers not heard from in `fresh` seconds go back on the stage list;
    how many."""
    r, now, moved = client(), time.time(), 0
    seen = {name: float(value.split()[1]) for name, value in r.hgetall(WORKERS).items()}
    prefix = key("stage", "taken", "")
    for taken in r.scan_iter(prefix + "*"):
        owner = taken[len(prefix) :]
        if now - seen.get(owner, 0.0) > fresh:
            while r.lmove(taken, STAGE, "LEFT", "RIGHT"):
                moved += 1
    return moved


def put_frames(chunk: ChunkRef, frames: dict[str, bytes], ttl: int) -> None:
    """Hold each frame's bytes under its content key (sha256) for this chunk, `ttl` seconds at most;
    its report (`chunk_done`) releases them, and a frame no chunk holds is deleted. Holding and
    releasing are by chunk, so a chunk staged or reported twice counts once."""
    pipe = raw_client().pipeline()
    for sha, data in frames.items():
        pipe.set(key("frame", sha), data, ex=ttl)
        pipe.sadd(key("frame", sha, "holds"), _holder(chunk))
        pipe.expire(key("frame", sha, "holds"), ttl)
    pipe.execute()


def frame(sha: str) -> bytes | None:
    return raw_client().get(key("frame", sha))


def done_chunks(run: VideoRun) -> set[int]:
    """The numbers of the run's chunks reported done."""
    return set(map(int, client().hkeys(_vk(run, "chunks"))))


def plan(run: VideoRun, chunks=None) -> dict:
    """{chunk number: jobs} of the video's plan: every chunk, or those numbered in `chunks`."""
    k = _vk(run, "plan")
    if chunks is None:
        return {int(c): json.loads(j) for c, j in client().hgetall(k).items()}
    chunks = list(chunks)
    values = client().hmget(k, chunks) if chunks else []
    return {c: json.loads(j) for c, j in zip(chunks, values) if j}


def requeue(run: VideoRun, numbers: list[int]) -> None:
    """Put chunks of the run back on its batch's pending list (the watchdog found them nowhere)."""
    if numbers:
        client().rpush(_bk(run.batch, "pending"), *(run.chunk(n).name for n in numbers))


def label_sent(run: VideoRun) -> int:
    """Mark a (re)sent label of this run; returns how many times it was sent."""
    pipe = client().pipeline()
    pipe.hset(_vk(run), "label_sent", time.time())
    pipe.hincrby(_vk(run), "label_sends", 1)
    return pipe.execute()[1]


# -- streaming: chunks planned while frames land -----------------------------------------------

_ADD_CHUNKS = """
-- KEYS[1] video, KEYS[2] its plan, KEYS[3] batch's pending, KEYS[4] batch
local run, now, ttl, index, reused = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local n, detecting = tonumber(ARGV[6]), ARGV[7]
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming')
if redis.call('HEXISTS', KEYS[4], 'cancelled') == 1 then return -1 end
if v[1] ~= detecting or v[2] ~= run or not v[3] then return -1 end
local first = redis.call('HINCRBY', KEYS[1], 'planned', n) - n
for c = 0, n - 1 do
  redis.call('HSET', KEYS[2], first + c, ARGV[8 + c])
  redis.call('RPUSH', KEYS[3], index .. ':' .. (first + c) .. ':' .. run)
end
redis.call('HINCRBY', KEYS[1], 'tiles_reused', reused)
redis.call('HSET', KEYS[1], 'updated', now)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return first
"""


def add_chunks(run: VideoRun, chunks: list, reused: int = 0) -> int | None:
    """Plan `chunks` (lists of jobs) of a streaming video under the next chunk numbers and queue them
    in the batch's pending list; `reused` tiles were found already detected. Returns the first
    number, or None when the video no longer streams in this run (ended, retried, cancelled)."""
    keys = [_vk(run), _vk(run, "plan"), _bk(run.batch, "pending"), _bk(run.batch)]
    args = [run.run, time.time(), RECORD_TTL, run.index, reused, len(chunks), VideoState.DETECTING]
    first = int(_run(_ADD_CHUNKS)(keys, [*args, *(json.dumps(c) for c in chunks)]))
    return None if first < 0 else first


_SEGMENT_DONE = """
-- KEYS[1] video, KEYS[2] its segments
local run, segment, part, now, ttl, detecting = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming')
if v[1] ~= detecting or v[2] ~= run or not v[3] then return -1 end
redis.call('HSET', KEYS[2], segment, part)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HSET', KEYS[1], 'updated', now)
if redis.call('HLEN', KEYS[2]) >= tonumber(v[3]) then return 1 end
return 0
"""


def segment_done(run: VideoRun, segment: int, part: dict) -> bool | None:
    """Keep a segment's extraction result; True when every segment is done and the plan still open
    (the caller joins them and closes the plan: `close_plan` lets one caller through), None if the
    video no longer streams."""
    args = [run.run, segment, json.dumps(part), time.time(), RECORD_TTL, VideoState.DETECTING]
    flag = int(_run(_SEGMENT_DONE)([_vk(run), _vk(run, "segments")], args))
    return None if flag < 0 else bool(flag)


def segments(run: VideoRun) -> dict:
    """{segment number: its extraction result} of the segments done so far."""
    return {int(k): json.loads(v) for k, v in client().hgetall(_vk(run, "segments")).items()}


_CLOSE_PLAN = """
-- KEYS[1] video, KEYS[2] its chunks done
local run, now, detecting = ARGV[1], ARGV[2], ARGV[3]
local v = redis.call('HMGET', KEYS[1], 'state', 'run', 'streaming', 'planned', 'label_sent')
if v[1] ~= detecting or v[2] ~= run or not v[3] then return 0 end
redis.call('HDEL', KEYS[1], 'streaming')
redis.call('HSET', KEYS[1], 'chunks', v[4], 'updated', now)
hset_pairs(KEYS[1], 4)
if redis.call('HLEN', KEYS[2]) >= tonumber(v[4]) and not v[5] then
  redis.call('HSET', KEYS[1], 'label_sent', now)
  return 2
end
return 1
"""


def close_plan(run: VideoRun, **fields) -> bool | None:
    """Every frame is on disk and every chunk planned: the plan's size is final. True when every
    chunk is already done and the caller is the one to send `label`; False when the last chunk will;
    None if the video no longer streams in this run."""
    args = [run.run, time.time(), VideoState.DETECTING, *_field_args(fields)]
    flag = int(_run(_CLOSE_PLAN)([_vk(run), _vk(run, "chunks")], args))
    return None if flag == 0 else flag == 2


# -- steering: cancel, retry -----------------------------------------------------------------

_CANCEL = """
-- KEYS[1] batch, KEYS[2..4] its pending, inflight, tasks
local now, prefix, videos, active, to, drop = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local queued = ARGV[7]
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancelled', now)
local ids = redis.call('HVALS', KEYS[4])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for i = 0, videos - 1 do
  local vk = prefix .. i
  local v = redis.call('HMGET', vk, 'state', 'task_id', 'label_task_id', 'label_sent')
  if member(active, v[1]) then
    redis.call('HSET', vk, 'state', to, 'finished', now, 'updated', now, 'error', 'cancelled while ' .. v[1])
    for _, name in ipairs(split(drop)) do redis.call('DEL', vk .. ':' .. name) end
    if v[1] == queued and v[2] then table.insert(ids, v[2]) end
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
    sources, target = TRANSITIONS["cancel"]
    keys = [_bk(batch_id), _bk(batch_id, "pending"), _bk(batch_id, "inflight"), _bk(batch_id, "tasks")]
    args = [time.time(), key("batch", batch_id, "video", ""), info.videos, lua_list(sources), target]
    ids = _run(_CANCEL)(keys, [*args, ",".join(dropped_on(target)), VideoState.QUEUED])
    client().srem(RUNNING, batch_id)
    return ids


_RETRY = """
-- KEYS[1] batch, KEYS[2..5] its pending, inflight, tasks, sends
local now, prefix, videos, from, to = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local clear, drop = ARGV[6], ARGV[7]
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HDEL', KEYS[1], 'cancelled')
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local out = {}
for i = 0, videos - 1 do
  local vk = prefix .. i
  local v = redis.call('HMGET', vk, 'state', 'run')
  if member(from, v[1]) then
    local run = tonumber(v[2] or '1') + 1
    redis.call('HSET', vk, 'state', to, 'run', run, 'updated', now)
    redis.call('HDEL', vk, unpack(split(clear)))
    for _, name in ipairs(split(drop)) do redis.call('DEL', vk .. ':' .. name) end
    table.insert(out, i)
    table.insert(out, run)
  end
end
return out
"""


def retry(batch_id: str) -> list[VideoRun] | None:
    """Start the batch's failed and cancelled videos again (each as its next run): the runs to queue
    a `prepare` for, or None if there is no batch. Done videos are left as they are."""
    info = batch(batch_id)
    if info is None:
        return None
    sources, target = TRANSITIONS["retry"]
    keys = [_bk(batch_id), *(_bk(batch_id, k) for k in ("pending", "inflight", "tasks", "sends"))]
    args = [time.time(), key("batch", batch_id, "video", ""), info.videos, lua_list(sources), target]
    flat = _run(_RETRY)(keys, [*args, ",".join(RUN_FIELDS), ",".join(RUN_KEYS)])
    if flat:
        client().sadd(RUNNING, batch_id)
    return [VideoRun(batch_id, int(flat[k]), int(flat[k + 1])) for k in range(0, len(flat), 2)]


# -- what the watchdog reads -----------------------------------------------------------------


def running_batches() -> list[str]:
    return sorted(client().smembers(RUNNING))


def inflight(batch_id: str) -> list[tuple[ChunkRef, float]]:
    """[(chunk, time of its last news)] of the batch's chunks in flight, oldest news first."""
    return [
        (ChunkRef.parse(batch_id, n), t) for n, t in client().zrange(_bk(batch_id, "inflight"), 0, -1, withscores=True)
    ]


def pending_videos(batch_id: str) -> set[int]:
    """The videos with a chunk waiting in the batch's pending list."""
    return {ChunkRef.parse(batch_id, n).video.index for n in client().lrange(_bk(batch_id, "pending"), 0, -1)}


def sends(chunk: ChunkRef) -> int:
    return int(client().hget(_bk(chunk.video.batch, "sends"), chunk.name) or 0)


def ended(batch_id: str) -> None:
    """Every video of the batch ended: drop its dispatch keys and take it off the watchdog's list."""
    pipe = client().pipeline()
    pipe.srem(RUNNING, batch_id)
    pipe.delete(*(_bk(batch_id, k) for k in ("pending", "inflight", "tasks", "sends")))
    pipe.execute()


def watchdog_turn(worker: str, seconds: float) -> bool:
    """Whether this worker looks after the batches for the next `seconds` (one worker takes it)."""
    return bool(client().set(WATCHDOG, worker, nx=True, px=max(int(seconds * 1000), 1)))


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
