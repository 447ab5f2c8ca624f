"""The annotation state machine's transitions, each against a bare Redis (no workers, no fleet).

Every transition is a Lua script given its rules from `tasks.batch_records`; these tests hold the
scripts to that table: a transition is made from exactly the states it declares, by the current
run only, and writes and drops exactly what it says.
"""

from __future__ import annotations

import itertools

import pytest

from tasks import batch_store
from tasks.batch_records import PLAN_FIELDS, RUN_FIELDS, TERMINAL, TRANSITIONS, ChunkRef, VideoRun, VideoState

JOB = [["000001", [0, 0, 416, 416]]]


def new_batch(tmp_path, videos: int = 1) -> str:
    return batch_store.create_batch(
        [str(tmp_path / f"v{i}.avi") for i in range(videos)],
        [str(tmp_path / f"v{i}") for i in range(videos)],
        str(tmp_path),
        {"tile": 416},
        None,
        False,
        None,
        [str(tmp_path)],
    )


def put_state(bare_redis, run: VideoRun, state: VideoState) -> None:
    """Set a video's state as a run of the job would have left it (test setup only)."""
    bare_redis.hset(f"cvfleet:batch:{run.batch}:video:{run.index}", mapping={"state": state, "run": run.run})


def detecting(tmp_path, chunks: int = 3) -> VideoRun:
    """A video detecting `chunks` chunks of one tile each, as `prepare` leaves it."""
    run = VideoRun(new_batch(tmp_path), 0, 1)
    assert batch_store.move(run, "extract")
    assert batch_store.start_detecting(run, [JOB] * chunks, frames=1, tiles=chunks)
    return run


def test_a_new_batch_records_each_video_queued_in_run_1(bare_redis, tmp_path):
    batch_id = new_batch(tmp_path, videos=2)
    info = batch_store.batch(batch_id)
    assert (info.videos, info.settings, info.roots, info.cancelled) == (2, {"tile": 416}, [str(tmp_path)], None)
    v = batch_store.video(batch_id, 1)
    assert (v.index, v.state, v.run, v.video) == (1, VideoState.QUEUED, 1, str(tmp_path / "v1.avi"))
    assert batch_store.running_batches() == [batch_id]


MOVES = ["extract", "label", "relabel", "finish", "fail"]


@pytest.mark.parametrize("transition,state", list(itertools.product(MOVES, VideoState)))
def test_a_transition_is_made_from_exactly_the_states_it_declares(bare_redis, tmp_path, transition, state):
    run = VideoRun(new_batch(tmp_path), 0, 1)
    put_state(bare_redis, run, state)
    sources, target = TRANSITIONS[transition]
    assert batch_store.move(run, transition) is (state in sources)
    assert batch_store.video(run.batch, 0).state is (target if state in sources else state)


def test_a_message_of_an_older_run_changes_nothing(bare_redis, tmp_path):
    run = VideoRun(new_batch(tmp_path), 0, 2)
    put_state(bare_redis, run, VideoState.EXTRACTING)
    stale = VideoRun(run.batch, 0, 1)
    assert not batch_store.move(stale, "fail")
    assert not batch_store.note(stale, updated_by="old")
    assert not batch_store.gate(stale) and batch_store.gate(run)
    assert batch_store.video(run.batch, 0).state is VideoState.EXTRACTING


def test_failing_keeps_the_first_line_of_the_reason_and_drops_the_plan_not_the_counts(bare_redis, tmp_path):
    run = detecting(tmp_path)
    assert batch_store.chunk_done(run.chunk(0), 1) == (False, range(0, 1))
    assert batch_store.fail(run, "a bad frame\nTraceback ...")
    v = batch_store.video(run.batch, 0)
    assert (v.state, v.error, v.finished is not None) == (VideoState.FAILED, "a bad frame", True)
    assert batch_store.plan(run) == {} and batch_store.done_chunks(run) == {0}
    assert not batch_store.gate(run) and not batch_store.fail(run, "again")  # failed is final


def test_finishing_drops_every_key_of_the_run(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=1)
    assert batch_store.chunk_done(run.chunk(0), 1) == (True, range(0, 1))
    assert batch_store.move(run, "label")
    assert batch_store.finish(run, {"boxes": 3}, frames=1)
    v = batch_store.video(run.batch, 0)
    assert (v.state, v.summary, v.frames) == (VideoState.DONE, {"boxes": 3}, 1)
    assert batch_store.plan(run) == {} and batch_store.done_chunks(run) == set()
    assert batch_store.progress(run.batch).videos[0].tiles_done == v.tiles


def test_start_detecting_plans_and_queues_every_chunk_once(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=3)
    v = batch_store.video(run.batch, 0)
    assert (v.state, v.chunks, v.tiles) == (VideoState.DETECTING, 3, 3)
    assert batch_store.plan(run) == {0: JOB, 1: JOB, 2: JOB}
    assert batch_store.pending_videos(run.batch) == {0}
    assert not batch_store.start_detecting(run, [JOB])  # no longer extracting: nothing written
    assert batch_store.video(run.batch, 0).chunks == 3


def test_no_plan_starts_in_a_cancelled_batch(bare_redis, tmp_path):
    run = VideoRun(new_batch(tmp_path), 0, 1)
    assert batch_store.move(run, "extract")
    batch_store.cancel(run.batch)
    assert not batch_store.start_detecting(run, [JOB])
    assert not batch_store.start_streaming(run, 2)


def test_the_last_chunk_sends_label_once_and_a_repeated_report_is_not_counted_again(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=2)
    assert batch_store.chunk_done(run.chunk(1), 1) == (False, range(0, 0))
    assert batch_store.chunk_done(run.chunk(1), 1) == (False, range(0, 0))  # sent twice
    assert batch_store.chunk_done(run.chunk(0), 1) == (True, range(0, 2))
    assert batch_store.chunk_done(run.chunk(0), 1) == (False, range(2, 2))  # label already sent


def test_the_last_chunk_sends_label_only_once_the_plan_is_closed(bare_redis, tmp_path):
    run = VideoRun(new_batch(tmp_path), 0, 1)
    assert batch_store.move(run, "extract")
    assert batch_store.start_streaming(run, 2)
    assert batch_store.add_chunks(run, [JOB, JOB]) == 0
    assert batch_store.chunk_done(run.chunk(1), 1) == (False, range(0, 0))
    assert batch_store.chunk_done(run.chunk(0), 1) == (False, range(0, 2))
    assert batch_store.segment_done(run, 1, {"names": []}) is False  # one of two segments
    assert batch_store.add_chunks(run, [JOB]) == 2
    assert batch_store.segment_done(run, 0, {"names": []}) is True
    assert batch_store.close_plan(run, frames=5) is False  # chunk 2 is still out: it will send label
    assert batch_store.close_plan(run) is None  # closed once
    assert batch_store.add_chunks(run, [JOB]) is None  # no chunk after the close
    assert batch_store.chunk_done(run.chunk(2), 1) == (True, range(2, 3))
    v = batch_store.video(run.batch, 0)
    assert (v.chunks, v.frames, v.streaming) == (3, 5, None)


def test_restart_starts_the_next_run_queued_with_a_clean_plan(bare_redis, tmp_path):
    run = VideoRun(new_batch(tmp_path), 0, 1)
    assert batch_store.move(run, "extract")
    assert batch_store.start_streaming(run, 2)
    assert batch_store.add_chunks(run, [JOB], reused=4) == 0
    new = batch_store.restart(run, single_pass=1)
    assert new == VideoRun(run.batch, 0, 2)
    v = batch_store.video(run.batch, 0)
    assert (v.state, v.run, v.single_pass) == (VideoState.QUEUED, 2, True)
    assert all(getattr(v, f) in (None, 0, "", False) for f in PLAN_FIELDS if hasattr(v, f))
    assert batch_store.plan(new) == {} and batch_store.restart(run) is None  # run 1 is gone


def test_cancel_ends_every_video_not_ended_and_returns_the_messages_to_revoke(bare_redis, tmp_path):
    batch_id = new_batch(tmp_path, videos=3)
    runs = [VideoRun(batch_id, i, 1) for i in range(3)]
    batch_store.set_task_id(runs[0], "task_id", "prepare-0")  # queued: its prepare may wait in a queue
    assert batch_store.move(runs[1], "extract")
    assert batch_store.start_detecting(runs[1], [JOB])
    batch_store.sent(runs[1].chunk(0), "detect-1-0")
    put_state(bare_redis, runs[2], VideoState.DONE)
    assert sorted(batch_store.cancel(batch_id)) == ["detect-1-0", "prepare-0"]
    states = [v.state for v in batch_store.progress(batch_id).videos]
    assert states == [VideoState.CANCELLED, VideoState.CANCELLED, VideoState.DONE]
    assert batch_store.video(batch_id, 1).error == "cancelled while detecting"
    assert batch_store.dispatch_all(10) == [] and batch_store.running_batches() == []
    assert batch_store.cancel("no-such-batch") is None


def test_retry_starts_failed_and_cancelled_videos_as_their_next_run_with_every_run_field_cleared(bare_redis, tmp_path):
    batch_id = new_batch(tmp_path, videos=2)
    failed, done = VideoRun(batch_id, 0, 1), VideoRun(batch_id, 1, 1)
    assert batch_store.move(failed, "extract")
    assert batch_store.start_detecting(failed, [JOB, JOB], tiles_reused=2)
    batch_store.note(failed, prepare_sends=2, extract_sends=1)
    assert batch_store.fail(failed, "boom")
    put_state(bare_redis, done, VideoState.DONE)
    assert batch_store.retry(batch_id) == [failed.next()]
    h = bare_redis.hgetall(f"cvfleet:batch:{batch_id}:video:0")
    assert (h["state"], h["run"]) == ("queued", "2")
    assert not set(RUN_FIELDS) & set(h), set(RUN_FIELDS) & set(h)
    assert batch_store.plan(failed.next()) == {} and batch_store.done_chunks(failed.next()) == set()
    assert batch_store.video(batch_id, 1).state is VideoState.DONE
    assert batch_store.running_batches() == [batch_id]


def test_note_writes_bookkeeping_only_while_the_video_runs(bare_redis, tmp_path):
    run = VideoRun(new_batch(tmp_path), 0, 1)
    assert batch_store.note(run, prepare_sends=1)
    assert batch_store.video(run.batch, 0).prepare_sends == 1
    for state in TERMINAL:
        put_state(bare_redis, run, state)
        assert not batch_store.note(run, prepare_sends=2)


def test_dispatch_fills_the_fleet_from_the_batch_with_the_fewest_chunks_left(bare_redis, tmp_path):
    big = detecting(tmp_path / "big", chunks=5)
    small = detecting(tmp_path / "small", chunks=2)
    out = batch_store.dispatch_all(3)
    assert [c for c, *_ in out] == [small.chunk(0), small.chunk(1), big.chunk(0)]
    assert [jobs for *_, jobs in out] == [JOB] * 3
    assert batch_store.dispatch_all(3) == []  # 3 in flight: the fleet is full
    batch_store.chunk_done(small.chunk(0), 1)
    assert [c for c, *_ in batch_store.dispatch_all(3)] == [big.chunk(1)]
    assert {c for c, _ in batch_store.inflight(small.batch)} == {small.chunk(1)}


def test_a_chunk_of_a_video_no_longer_detecting_is_not_dispatched(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=2)
    assert batch_store.fail(run, "gone")
    assert batch_store.dispatch_all(5) == []


def test_chunk_names_round_trip():
    chunk = VideoRun("b1", 3, 2).chunk(7)
    assert chunk.name == "3:7:2" and ChunkRef.parse("b1", chunk.name) == chunk


def test_a_chunk_found_away_from_the_video_keeps_its_boxes_in_redis_until_they_go_home(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=2)
    boxes = {"000001": [[[0, 0, 416, 416], [[0, 0.9, 1.0, 2.0, 30.0, 40.0]]]]}
    assert batch_store.chunk_done(run.chunk(1), 1, boxes) == (False, range(0, 0))
    assert batch_store.take_boxes(run) == {1: boxes}
    batch_store.boxes_home(run, [1])
    assert batch_store.take_boxes(run) == {}
    stale = VideoRun(run.batch, 0, 9)
    assert batch_store.chunk_done(stale.chunk(0), 1, boxes) == (False, range(0, 0))
    assert batch_store.take_boxes(run) == {} and batch_store.take_boxes(stale) == {}  # another run's: not kept


def test_a_frame_is_held_while_a_staged_chunk_needs_it_and_deleted_after(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=2)
    batch_store.put_frames(run.chunk(0), {"aa": b"\xff\xd8one"}, ttl=60)  # the chunks share frame aa
    batch_store.put_frames(run.chunk(1), {"aa": b"\xff\xd8one", "bb": b"\xff\xd8two"}, ttl=60)
    batch_store.put_frames(run.chunk(1), {"aa": b"\xff\xd8one", "bb": b"\xff\xd8two"}, ttl=60)  # staged twice
    assert 0 < bare_redis.ttl("cvfleet:frame:aa") <= 60
    batch_store.chunk_done(run.chunk(0), 1, {}, ["aa"])
    batch_store.chunk_done(run.chunk(0), 1, {}, ["aa"])  # reported twice: released once
    assert batch_store.frame("aa") == b"\xff\xd8one"  # chunk 1 still holds it
    batch_store.chunk_done(run.chunk(1), 1, {}, ["aa", "bb"])
    assert batch_store.frame("aa") is None and batch_store.frame("bb") is None
    assert bare_redis.keys("cvfleet:frame:*") == []


def test_the_done_prefix_is_claimed_for_labelling_once_per_chunk(bare_redis, tmp_path):
    run = detecting(tmp_path, chunks=3)
    assert batch_store.claim_labels(run) == range(0, 0)
    batch_store.chunk_done(run.chunk(1), 1)
    assert batch_store.claim_labels(run) == range(0, 0)  # chunk 0 is not done: no prefix yet
    batch_store.chunk_done(run.chunk(0), 1)
    assert batch_store.claim_labels(run) == range(0, 2)
    assert batch_store.claim_labels(run) == range(2, 2)  # claimed once
    assert batch_store.claim_labels(VideoRun(run.batch, 0, 2)) == range(0, 0)  # not this run


def test_staged_work_comes_out_in_order_and_a_dead_stagers_items_go_back(bare_redis):
    import time

    batch_store.stage({"batch": "b", "stage": "0:1:1", "task_id": "t", "video_dir": "/v", "cache": "/c"})
    batch_store.stage({"batch": "b", "index": 0, "run": 1})
    item, raw = batch_store.next_staged("a@h", 0.1)
    assert item["stage"] == "0:1:1"
    batch_store.staged_done("a@h", raw)
    assert batch_store.next_staged("a@h", 0.1)[0] == {"batch": "b", "index": 0, "run": 1}  # a dies with it
    assert batch_store.next_staged("b@h", 0.1) is None
    batch_store.heartbeat("b@h", 1)
    bare_redis.hset(batch_store.WORKERS, "a@h", f"1 {time.time() - 120}")
    assert batch_store.recover_staged(fresh=60) == 1  # a not heard from for 2 minutes: its item goes back
    assert batch_store.next_staged("b@h", 0.1)[0] == {"batch": "b", "index": 0, "run": 1}
    assert batch_store.recover_staged(fresh=60) == 0  # b is alive: what it holds stays with it


def test_a_frame_read_from_redis_has_the_files_pixels_and_an_expired_one_fails_with_the_reason(bare_redis, tmp_path):
    import cv2
    import numpy as np

    from tasks.annotate.steps import frame_from_redis
    from vision.errors import VisionError

    path = tmp_path / "000001.jpg"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    run = detecting(tmp_path, chunks=1)
    batch_store.put_frames(run.chunk(0), {"ab12": path.read_bytes()}, ttl=60)
    assert np.array_equal(frame_from_redis("000001", "ab12"), cv2.imread(str(path)))
    with pytest.raises(VisionError, match="frame 000002 .* is no longer in Redis, it expired before a detect host"):
        frame_from_redis("000002", "cd34")
