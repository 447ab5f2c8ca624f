"""Annotation batches as Redis records: what was submitted, and where each video stands.

The keys and their fields are listed once, in `tasks.store`. A video moves queued -> extracting ->
detecting -> labelling -> done, or to failed with a one-line reason. Writes are idempotent (HSET), so
a task that runs twice records once.
"""

from __future__ import annotations

import json
import time
import uuid

from tasks.store import RECORD_TTL, client, key

TERMINAL = ("done", "failed")


def _touch(pipe, *keys) -> None:
    for k in keys:
        pipe.expire(k, RECORD_TTL)


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
    pipe = client().pipeline()
    bk = key("batch", batch_id)
    pipe.hset(
        bk,
        mapping={
            "id": batch_id,
            "created": time.time(),
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
        vk = key("batch", batch_id, "video", i)
        pipe.hset(vk, mapping={"index": i, "video": video, "video_dir": video_dir, "state": "queued"})
        _touch(pipe, vk)
    pipe.zadd(key("batches"), {batch_id: time.time()})
    _touch(pipe, bk)
    pipe.execute()
    return batch_id


def batch(batch_id: str) -> dict | None:
    data = client().hgetall(key("batch", batch_id))
    if not data:
        return None
    for field in ("settings", "roots"):
        data[field] = json.loads(data[field])
    data["videos"] = int(data["videos"])
    data["preview"] = bool(int(data["preview"]))
    data["tiles_per_task"] = int(data["tiles_per_task"]) or None
    return data


def batch_ids(limit: int = 20) -> list[str]:
    """The newest batches first."""
    return client().zrevrange(key("batches"), 0, limit - 1)


def video(batch_id: str, index: int) -> dict | None:
    """A video's record (video, video_dir, state, ...) or None."""
    return client().hgetall(key("batch", batch_id, "video", index)) or None


def update_video(batch_id: str, index: int, **fields) -> None:
    """Set fields of a video's record; a video that ends drops its per-chunk progress hash
    (one field per detect task: thousands for a long video), its tiles all counted as done."""
    vk = key("batch", batch_id, "video", index)
    mapping = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items()}
    if fields.get("state") in TERMINAL:
        mapping["finished"] = time.time()
    pipe = client().pipeline()
    pipe.hset(vk, mapping=mapping)
    _touch(pipe, vk)
    if fields.get("state") == "done":
        pipe.delete(key("batch", batch_id, "video", index, "chunks"))
    pipe.execute()


def fail_video(batch_id: str, index: int, reason: str) -> None:
    update_video(batch_id, index, state="failed", error=reason.splitlines()[0] if reason else "failed")


def chunk_done(batch_id: str, index: int, chunk: int, tiles: int) -> None:
    ck = key("batch", batch_id, "video", index, "chunks")
    pipe = client().pipeline()
    pipe.hset(ck, chunk, tiles)
    _touch(pipe, ck)
    pipe.execute()


def progress(batch_id: str) -> dict | None:
    """The batch and, per video, state, frames, tiles done/total, error and summary."""
    info = batch(batch_id)
    if info is None:
        return None
    r = client()
    pipe = r.pipeline()
    for i in range(info["videos"]):
        pipe.hgetall(key("batch", batch_id, "video", i))
        pipe.hvals(key("batch", batch_id, "video", i, "chunks"))
    replies = pipe.execute()
    videos = []
    for i in range(info["videos"]):
        v, chunks = replies[2 * i], replies[2 * i + 1]
        for field in ("frames", "tiles"):
            v[field] = int(v.get(field) or 0)
        v["tiles_done"] = v["tiles"] if v["state"] == "done" else sum(int(c) for c in chunks)
        if v.get("summary"):
            v["summary"] = json.loads(v["summary"])
        videos.append(v)
    info["video_states"] = videos
    info["finished"] = all(v["state"] in TERMINAL for v in videos)
    info["failed"] = sum(v["state"] == "failed" for v in videos)
    return info
