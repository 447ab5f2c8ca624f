"""Track-and-fill over time: gaps filled, flicker dropped, links by one assignment, classes apart."""

import pytest

from vision.boxes import Box
from vision.errors import VisionError
from vision.temporal import fill_gaps, link_tracks, over_time


def box(x, conf=0.9, cls=0, y=100.0, w=40.0, h=100.0):
    return Box(cls, conf, x, y, x + w, y + h)


def test_an_object_missed_for_one_frame_is_filled_between_its_sightings():
    frames = [[box(100, 0.9)], [box(110, 0.8)], [], [box(130, 0.7)]]
    kept, filled = over_time(frames, "fill", gap=2)
    assert kept == [[0], [0], [], [0]]
    assert filled == [[], [], [Box(0, 0.7, 120.0, 100.0, 160.0, 200.0)], []]


def test_a_gap_longer_than_the_limit_stays_open():
    frames = [[box(100)], [], [], [], [box(100)]]
    assert over_time(frames, "fill", gap=2)[1] == [[]] * 5
    assert over_time(frames, "fill", gap=3)[1][1:4] == [[box(100)]] * 3


def test_a_fill_never_lands_on_a_box_already_there():
    frames = [[box(100)], [box(102, cls=0, conf=0.3)], [box(100)]]  # a weak box at t=1 joined neither
    tracks = link_tracks(frames, gap=2)
    assert len(tracks) == 1 and len(tracks[0].members) == 3
    assert fill_gaps(tracks, frames, 2) == [[], [], []]


def test_clean_drops_one_frame_low_confidence_boxes_only():
    weak_once = box(500, 0.3)
    strong_once = box(300, 0.9)
    weak_track = [box(100, 0.35), box(104, 0.35), box(108, 0.35)]
    frames = [[weak_track[0]], [weak_track[1], weak_once, strong_once], [weak_track[2]]]
    kept, filled = over_time(frames, "clean")
    assert kept == [[0], [0, 2], [0]] and filled == [[], [], []]


def test_links_are_one_assignment_not_greedy():
    # A at t0 overlaps both boxes of t1; greedy would take the best pair for A and leave B unlinked
    a, b = box(100), box(130)
    a1, b1 = box(115), box(145)
    tracks = link_tracks([[a, b], [a1, b1]], gap=1)
    assert sorted((tr.members[0][1].x1, tr.members[1][1].x1) for tr in tracks) == [(100, 115), (130, 145)]


def test_classes_never_link():
    frames = [[box(100, cls=0)], [box(100, cls=2)], [box(100, cls=0)]]
    kept, filled = over_time(frames, "both", gap=2)
    assert filled[1] == [box(100, cls=0)]
    assert kept == [[0], [0], [0]]  # the lone class-2 box lives one frame, but at 0.9 it is no flicker


@pytest.mark.parametrize("mode, gap", [("smooth", 2), ("fill", 0), ("fill", 11), ("fill", 1.5), ("fill", True)])
def test_bad_temporal_settings_are_one_line_errors(mode, gap):
    with pytest.raises(VisionError, match="temporal must be|fill gap must be"):
        over_time([[box(1)]], mode, gap)


def test_a_gap_between_unsure_sightings_is_not_filled():
    frames = [[box(100, 0.45)], [], [box(110, 0.9)]]
    assert over_time(frames, "fill")[1] == [[], [], []]
