"""What follows once a detect chunk's boxes are known, wherever they were found.

The chunk is counted done (`batch_store.chunk_done`): its last chunk sends `label`, every chunk
feeds the fleet the next. Then the frames whose every tile is now detected get their labels early,
by a process that has the video's folder: the detect task itself where every worker sees the
storage root, else the video's home (`tasks.annotate.stager`), which first writes to `.tiles/` the
boxes that detect hosts kept in Redis.
"""

from __future__ import annotations

from pathlib import Path

from tasks import batch_store
from tasks.annotate import context, dispatch
from tasks.batch_records import ChunkRef, VideoRun
from vision import pipeline, tile_cache


def reported(chunk: ChunkRef, tiles: int, boxes: dict | None = None, frames=()) -> None:
    """Count the chunk done and move its video on. `boxes` given: found on a host without the
    video's folder, so Redis keeps them and the video's home labels; `frames` are released."""
    run = chunk.video
    last, _ = batch_store.chunk_done(chunk, tiles, boxes, frames)
    if last:
        dispatch.send_label(run)
    dispatch.feed()
    if last:
        return
    if boxes is None:
        collect(run)
    else:
        batch_store.stage({"batch": run.batch, "index": run.index, "run": run.run})


def collect(run: VideoRun) -> None:
    """Labels early for the frames whose tiles are all done: claim the done prefix first, then take
    the boxes kept in Redis home (every chunk of a claimed prefix has its boxes kept), then label."""
    v = batch_store.video(run.batch, run.index)
    if v is None or v.run != run.run or not v.cache or not v.width:
        return
    video_dir, cache = context.inside(run.batch, v.video_dir), context.inside(run.batch, v.cache)
    claimed = batch_store.claim_labels(run)
    boxes_home(run, cache)
    if claimed:
        label_early(run, video_dir, cache, claimed)


def boxes_home(run: VideoRun, cache: Path) -> None:
    """Write the boxes detect hosts kept in Redis for this run to its tile cache, then drop them there."""
    waiting = batch_store.take_boxes(run)
    if not waiting:
        return
    plan = batch_store.plan(run, waiting)
    for number, boxes in waiting.items():
        if number in plan:
            tile_cache.write_chunk(cache, plan[number], boxes)
    batch_store.boxes_home(run, [n for n in waiting if n in plan])


def label_early(vr: VideoRun, video_dir: Path, cache: Path, newly: range) -> None:
    """Write the labels of the frames whose every tile is now detected: those of the chunks `newly`
    joined to the done prefix (and of the chunks before, back to where their first frame starts), less
    a frame the next chunk goes on with. `pipeline.label_early` writes the bytes the label step will write."""
    settings = context.settings(vr.batch)
    if not pipeline.labels_stream(settings):
        return
    v = batch_store.video(vr.batch, vr.index)
    if not v.width:
        return
    plan = batch_store.plan(vr, range(newly.start, newly.stop + 1))
    lo = newly.start
    while lo > 0 and newly.start in plan:  # back to the chunk where the first frame starts
        before = batch_store.plan(vr, [lo - 1]).get(lo - 1)
        if not before or before[-1][0] != plan[lo][0][0]:
            break
        lo -= 1
        plan[lo] = before
    results = [tile_cache.read_chunk(cache, plan[c]) for c in sorted(plan) if c < newly.stop]
    after = {name for name, _ in plan.get(newly.stop, [])}
    per_frame = pipeline.gather_detections([r for r in results if r])
    whole = len(pipeline.frame_tiles(v.width, v.height, settings, v.scale))
    ready = {n: t for n, t in per_frame.items() if n not in after and len(t) == whole}
    if ready:
        pipeline.label_early(video_dir, v.width, v.height, ready, settings, context.statics(vr.batch))
