"""The review queue: each reason found where it is, frames ranked by doubt, corrections left out."""

import pytest
from click.testing import CliRunner

from vision.boxes import Box
from vision.detections import frame_record
from vision.errors import VisionError
from vision.labels import LabelRow, format_labels
from vision.pipeline import annotate_video
from vision.review import SHEET_NAME, format_review, frame_doubts, rank
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile
from workers.cli import cli

W, H = 800, 400
LEFT, RIGHT, FULL = Tile(0, 0, 480, 400), Tile(320, 0, 480, 400), Tile(0, 0, W, H)


def person(x, y, conf=0.9, w=40, h=100):
    return Box(0, conf, x, y, x + w, y + h)


def record(name, per_tile, merged=None):
    """A detections.jsonl record; merged defaults to every tile box, each its own object."""
    if merged is None:
        merged = [(b, [i]) for i, (_, boxes) in enumerate(per_tile) for b in boxes]
    return frame_record(name, per_tile, merged)


def reasons(records, conf=0.25):
    return {d.frame: d.reasons for d in frame_doubts(records, W, H, conf, 416)}


def test_a_confident_box_seen_by_both_tiles_and_in_every_frame_raises_no_doubt():
    both = person(380, 100)  # inside the overlap 320..480: both tiles see it whole
    frames = [record(f"00000{i}", [(LEFT, [both]), (RIGHT, [both])], [(both, [0, 1])]) for i in (1, 2, 3)]
    assert reasons(frames) == {"000001": [], "000002": [], "000003": []}


def test_a_box_in_the_overlap_found_by_one_tile_only_is_a_tile_disagreement():
    box = person(380, 100)
    (why,) = reasons([record("000001", [(LEFT, [box]), (RIGHT, [])])]).values()
    assert why == ["1 object some overlapping tiles missed"]


def test_a_coarse_tile_that_missed_what_both_fine_tiles_found_is_not_a_disagreement():
    box = person(380, 100)
    coarse = Tile(0, 0, 640, 400)  # a tile of the coarse level: it sees the box at another scale
    assert reasons([record("000001", [(LEFT, [box]), (RIGHT, [box]), (coarse, [])])]) == {"000001": []}


def test_a_box_cut_by_the_tile_edge_is_not_a_disagreement():
    cut = person(440, 100)  # ends at the left tile's inner edge (480): that tile saw a piece
    piece = Box(0, 0.9, 440, 100, 479.5, 200)
    (why,) = reasons([record("000001", [(LEFT, [piece]), (RIGHT, [cut])], [(cut, [0, 1])])]).values()
    assert why == []


def test_a_large_box_every_tile_cut_is_a_reason_unless_a_whole_box_covers_it():
    wide = Box(0, 0.9, 300, 100, 500, 300)  # through the overlap 320..480: each tile holds a piece
    pieces = [(LEFT, [Box(0, 0.9, 300, 100, 479, 300)]), (RIGHT, [Box(0, 0.9, 321, 100, 500, 300)])]
    alone = record("000001", pieces, [(wide, [0, 1])])
    seen_whole = record("000001", [*pieces, (FULL, [Box(0, 0.8, 296, 96, 504, 310)])], [(wide, [0, 1])])
    other_class = record("000001", [*pieces, (FULL, [Box(2, 0.8, 296, 96, 504, 310)])], [(wide, [0, 1])])
    assert reasons([alone]) == {"000001": ["1 box cut by a tile edge that no whole box explains"]}
    assert reasons([seen_whole]) == {"000001": []}
    assert reasons([other_class])["000001"][-1] == "1 box cut by a tile edge that no whole box explains"


def test_a_box_inside_another_of_its_class_is_a_reason_and_of_another_class_is_not():
    body, head = Box(0, 0.9, 40, 40, 200, 380), Box(0, 0.9, 80, 50, 140, 120)
    bag = Box(24, 0.9, 80, 200, 140, 260)  # a handbag held in front of the body
    nested = record("000001", [(LEFT, [body, head])])
    carried = record("000001", [(LEFT, [body, bag])])
    (doubt,) = frame_doubts([nested], W, H, 0.25, 416)
    assert doubt.reasons == ["1 box inside another of its class"] and doubt.boxes == [head]
    assert reasons([carried]) == {"000001": []}


def test_full_frame_and_tiles_disagreeing_both_ways():
    small = person(100, 100)  # 21 x 52 px at the input: under one 32 px cell, too small for that pass
    big = person(100, 100, w=80, h=160)  # 42 x 83 px at the input: the full-frame pass should see it
    ghost = person(600, 50)  # the full-frame pass found it, the tile that holds it whole did not
    no_doubt = record("000001", [(LEFT, [small]), (RIGHT, []), (FULL, [])])
    both_ways = record("000001", [(LEFT, [big]), (RIGHT, []), (FULL, [ghost])])
    assert reasons([no_doubt]) == {"000001": []}
    assert reasons([both_ways]) == {"000001": ["2 boxes the full-frame pass and the tiles disagree on"]}


def test_a_box_living_one_frame_a_count_jump_and_low_confidence():
    walkers = [person(100, 100), person(200, 100), person(600, 100)]
    moved = [person(130, 100), person(230, 100), person(630, 100)]  # moved less than a size: same objects
    flicker = person(200, 250, conf=0.3)
    extra = [person(500, 250 + i) for i in range(0, 4)]
    frames = [
        record("000001", [(LEFT, walkers[:2]), (RIGHT, walkers[2:])]),
        record("000002", [(LEFT, [*moved[:2], flicker]), (RIGHT, [moved[2], *extra])]),
        record("000003", [(LEFT, walkers[:2]), (RIGHT, walkers[2:])]),
    ]
    why = reasons(frames)
    assert why["000001"] == [] and why["000003"] == []
    assert why["000002"] == [
        "5 boxes living one frame only",
        "1 box below 0.5 confidence (0.30)",
        "8 boxes against 3 and 3 around",
    ]


def test_filled_boxes_weigh_most_and_the_ranking_leaves_corrected_frames_out():
    box = person(100, 100)
    plain = record("000001", [(LEFT, [box])])
    filled = record("000002", [(LEFT, [])], [])
    filled["boxes"].append({"cls": 0, "conf": 0.5, "xyxy": [100, 100, 140, 200], "tiles": [], "filled": True})
    unsure = record("000003", [(LEFT, [person(100, 100, conf=0.3)])])
    ranked = rank(frame_doubts([plain, filled, unsure], W, H, 0.25, 416))
    assert [d.frame for d in ranked] == ["000002", "000003"]
    assert ranked[0].reasons == ["1 box filled in over a gap"] and ranked[0].score > ranked[1].score
    assert [d.frame for d in rank(frame_doubts([plain, filled, unsure], W, H, 0.25, 416), skip={"000002"})] == [
        "000003"
    ]
    text = format_review(ranked, 3, 1)
    assert text.splitlines()[1] == "# 3 frames, 2 with a doubt, 1 corrected by a person left out"
    assert text.splitlines()[2].startswith("000002   3.0  1 box filled in over a gap")


@pytest.fixture(scope="module")
def annotated(clip12, model_fields, tmp_path_factory):
    out = tmp_path_factory.mktemp("review")
    summary = annotate_video(clip12, out, AnnotateSettings(every=4, model=ModelSpec(**model_fields)))
    return out, summary


def test_annotate_writes_review_txt_and_names_the_frames_to_review_first(annotated):
    out, summary = annotated
    lines = (out / "clip12" / "review.txt").read_text().splitlines()
    listed = [line.split()[0] for line in lines if not line.startswith("#")]
    assert summary["review_first"] == listed[:5] and listed


def test_the_review_command_prints_the_worst_frames_and_draws_the_sheet(annotated):
    out, summary = annotated
    result = CliRunner().invoke(cli, ["review", str(out), "--top", "2"])
    assert result.exit_code == 0, result.output
    printed = [line.split()[0] for line in result.output.splitlines()[1:3]]
    assert printed == summary["review_first"][:2]
    assert (out / "clip12" / SHEET_NAME).stat().st_size > 0


def test_the_review_command_leaves_a_corrected_frame_out(annotated, tmp_path):
    import shutil

    out, summary = annotated
    copy = tmp_path / "clip12"
    shutil.copytree(out / "clip12", copy)
    first = summary["review_first"][0]
    (copy / "labels" / f"{first}.txt").write_text(format_labels([LabelRow(0, 0.5, 0.5, 0.1, 0.2)]))
    result = CliRunner().invoke(cli, ["review", str(copy)])
    assert result.exit_code == 0, result.output
    assert first not in [line.split()[0] for line in result.output.splitlines()[1:-1]]
    assert "1 corrected by a person left out" in (copy / "review.txt").read_text()


def test_a_folder_cvfleet_did_not_write_is_refused_in_one_line(tmp_path):
    (tmp_path / "labels").mkdir()
    result = CliRunner().invoke(cli, ["review", str(tmp_path)])
    assert result.exit_code != 0 and "is not a cvfleet dataset" in result.output
    assert isinstance(result.exception, SystemExit)
    with pytest.raises(VisionError):
        from vision.datasets import video_dirs

        video_dirs(tmp_path / "missing")
