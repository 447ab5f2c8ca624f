"""The batch watchdog's decisions on records in the real Redis of the session fleet.

Each test writes a batch record in the state a lost message leaves behind; the fleet's own
watchdog would act on it only after its 300 s stall window, so only the look the test calls does.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.fleet


@pytest.fixture
def detecting(fleet, tmp_path):
    """A batch of one video detecting 3 chunks, as `prepare` leaves it; (batch id, chunks)."""
    from tasks import batch_store
    from tasks.batch_records import VideoRun
    from tasks.store import client, key
    from vision.settings import AnnotateSettings
    from workers import asset_cache

    settings = AnnotateSettings(model=asset_cache.yolov3_tiny_files())
    batch_id = batch_store.create_batch(
        [str(tmp_path / "v.avi")], [str(tmp_path / "v")], str(tmp_path), settings.to_json(), None, False, None,
        [str(tmp_path)],
    )  # fmt: skip
    run = VideoRun(batch_id, 0, 1)
    assert batch_store.move(run, "extract")
    jobs = [[["000001", [0, 0, 416, 416]]], [["000001", [352, 0, 416, 416]]], [["000002", [0, 0, 416, 416]]]]
    assert batch_store.start_detecting(run, jobs, frames=2, tiles=3)
    client().delete(key("batch", batch_id, "pending"))  # sent, or lost: each test says which
    yield batch_id, [run.chunk(c) for c in range(3)]
    batch_store.cancel(batch_id)  # its chunks in flight no longer hold places of the fleet


def look(batch_id, stall=60.0, later=0.0):
    from tasks.watchdog import look_after

    return look_after(batch_id, stall, now=time.time() + later)


def test_nothing_is_sent_again_before_the_stall_window(detecting):
    from tasks import batch_store

    batch_id, chunks = detecting
    for chunk in chunks:
        batch_store.touch_inflight(chunk)
    assert look(batch_id, later=30) == []


def test_a_chunk_sent_three_times_without_news_fails_its_video_with_the_reason(detecting):
    from tasks import batch_store

    batch_id, chunks = detecting
    for chunk in chunks:
        batch_store.touch_inflight(chunk)
        for _ in range(3):
            batch_store.sent(chunk, "lost")
    actions = look(batch_id, later=61)
    assert any("failed: detect chunk 0 was sent 3 times and never reported back" in a for a in actions), actions
    v = batch_store.video(batch_id, 0)
    assert v.state == "failed" and "cvfleet batch retry" in v.error
    assert batch_store.inflight(batch_id) == []  # the failed video's chunks hold no place any more


def final(batch_id):
    from tasks import batch_store

    from support.fleet import wait_for

    return wait_for(lambda: (v := batch_store.video(batch_id, 0)).ended and v, 60, what="video end")


def test_chunks_neither_in_flight_nor_pending_nor_done_are_queued_again_and_run(detecting):
    from tasks import batch_store

    batch_id, chunks = detecting
    batch_store.chunk_done(chunks[1], 1)  # chunk 1 reported
    actions = look(batch_id, later=61)
    assert actions == [f"{batch_id}: video 0: 2 missing chunk(s) queued again"]
    assert batch_store.sends(chunks[0]) == batch_store.sends(chunks[2]) == 1
    assert batch_store.sends(chunks[1]) == 0
    v = final(batch_id)  # a worker ran them: the frames of this made-up video do not exist
    assert v.state == "failed" and "cannot read frame image" in v.error


def test_a_video_with_every_chunk_done_and_no_label_gets_label_sent_again_and_run(detecting):
    from tasks import batch_store

    batch_id, chunks = detecting
    for chunk in chunks:
        batch_store.chunk_done(chunk, 1)  # the last one's `label` message was lost
    assert look(batch_id, later=61) == [f"{batch_id}: video 0: label sent again"]
    v = final(batch_id)  # a worker ran it: this made-up video has no video.json
    assert v.label_sends == 1
    assert v.state == "failed" and "video.json" in v.error
