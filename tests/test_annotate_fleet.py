"""Annotation through the real fleet: same bytes as one process, broken videos fail alone, reuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workers import asset_cache

from support.fleet import cvfleet

pytestmark = pytest.mark.fleet

CLIP = ["--every", "25", "--max-frames", "5", "--tiles-per-task", "4"]  # 4 does not divide 6 tiles/frame


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    shutil.copy(asset_cache.ensure("vtest.avi"), d / "vtest.avi")
    return d


@pytest.fixture(scope="module")
def static_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("static") / "static_labels.txt"
    p.write_text("2 0.100000 0.900000 0.080000 0.060000\n")  # a car parked bottom-left
    return p


@pytest.fixture(scope="module")
def fleet_run(fleet, videos, static_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet-out")
    run = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--static", str(static_file), *CLIP)
    assert run.returncode == 0, run.stderr + run.stdout
    return out, run


def single_process(videos, static_file, out):
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    settings = AnnotateSettings(every=25, max_frames=5, model=ModelSpec(**asset_cache.yolov3_tiny_files()))
    return annotate_video(videos / "vtest.avi", out, settings, static=static_file)


def test_fleet_labels_equal_a_single_process_run_byte_for_byte(fleet_run, videos, static_file, tmp_path):
    out, _ = fleet_run
    summary = single_process(videos, static_file, tmp_path)
    fleet_dir, bare_dir = out / "vtest", tmp_path / "vtest"
    fleet_labels = sorted(p.name for p in (fleet_dir / "labels").iterdir())
    assert fleet_labels == [f"{i:06d}.txt" for i in range(1, 6)]
    assert fleet_labels == sorted(p.name for p in (bare_dir / "labels").iterdir())
    for name in fleet_labels:
        assert (fleet_dir / "labels" / name).read_bytes() == (bare_dir / "labels" / name).read_bytes(), name
    assert (fleet_dir / "classes.txt").read_bytes() == (bare_dir / "classes.txt").read_bytes()
    assert summary["counts"]["person"] >= 5


def test_output_is_a_labelimg_and_yolo_dataset(fleet_run):
    out, run = fleet_run
    d = out / "vtest"
    images = sorted(p.stem for p in (d / "images").glob("*.jpg"))
    labels = sorted(p.stem for p in (d / "labels").glob("*.txt"))
    assert images == labels == ["000001", "000002", "000003", "000004", "000005"]
    assert (d / "classes.txt").read_text().splitlines()[0] == "person"
    for line in (d / "labels" / "000001.txt").read_text().splitlines():
        cls, *xywh = line.split()
        assert int(cls) >= 0 and all(0.0 <= float(v) <= 1.0 and len(v.split(".")[1]) == 6 for v in xywh)
    assert "person" in run.stdout and str(d) in run.stdout


def test_static_box_is_in_every_frame_once(fleet_run):
    out, _ = fleet_run
    for path in (out / "vtest" / "labels").glob("*.txt"):
        assert path.read_text().splitlines().count("2 0.100000 0.900000 0.080000 0.060000") == 1


def test_resubmitting_the_same_video_reuses_frames_and_labels(fleet_run, videos, static_file):
    out, _ = fleet_run
    before = {p: p.stat().st_mtime_ns for p in (out / "vtest").rglob("*") if p.is_file()}
    again = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--static", str(static_file), *CLIP)
    assert again.returncode == 0, again.stderr
    assert "(reused)" in again.stdout
    after = {p: p.stat().st_mtime_ns for p in (out / "vtest").rglob("*") if p.is_file()}
    assert after == before


def test_a_broken_video_fails_alone_and_the_batch_finishes(fleet, videos, tmp_path):
    good = videos / "vtest.avi"
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(range(256)) * 64)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[:100_000])
    run = cvfleet(
        "annotate",
        str(good),
        str(noise),
        str(empty),
        str(cut),
        str(tmp_path / "missing.avi"),
        "--out",
        str(tmp_path / "out"),
        "--every",
        "50",
        "--max-frames",
        "2",
    )
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert any(l.strip().startswith("done   vtest.avi") for l in lines)
    for name in ("noise.mp4", "empty.avi", "missing.avi"):
        failed = [l for l in lines if l.strip().startswith(f"FAILED {name}:")]
        assert len(failed) == 1 and len(failed[0]) > len(f"  FAILED {name}: ") + 10
    assert len(list((tmp_path / "out" / "vtest" / "labels").glob("*.txt"))) == 2
    # a copy cut short is annotated as far as it decodes, with a warning (players show those frames)
    assert any(l.strip().startswith("done   cut.avi") for l in lines)
    warning = next(l for l in lines if "warning:" in l)
    assert "header says 795 frames, " in warning and "decoded" in warning
    assert len(list((tmp_path / "out" / "cut" / "labels").glob("*.txt"))) == 1


def test_a_header_mismatch_video_is_annotated_with_a_warning_and_exit_0(fleet, videos, tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes((videos / "vtest.avi").read_bytes()[:300_000])
    run = cvfleet("annotate", str(cut), "--out", str(tmp_path / "out"), "--every", "10")
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "out" / "cut" / "video.json").read_text())
    decoded = meta["frames_decoded"]
    assert meta["frame_count"] == 795 and 0 < decoded < 795 and meta["truncated"] is True
    assert f"warning: header says 795 frames, {decoded} decoded; annotated what decodes" in run.stdout
    labels = sorted((tmp_path / "out" / "cut" / "labels").glob("*.txt"))
    assert len(labels) == len(meta["frames"]) == -(-decoded // 10)


def test_strict_fails_a_header_mismatch_video(fleet, videos, tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes((videos / "vtest.avi").read_bytes()[:300_000])
    run = cvfleet("annotate", str(cut), "--out", str(tmp_path / "out"), "--every", "10", "--strict")
    assert run.returncode == 1
    failed = next(l for l in run.stdout.splitlines() if "FAILED cut.avi" in l)
    assert "truncated video: header says 795 frames" in failed and "--strict" in failed
    assert not (tmp_path / "out" / "cut" / "annotation.json").exists()


def test_no_wait_prints_the_id_and_batch_show_follows_to_the_end(fleet, videos, tmp_path):
    sub = cvfleet(
        "annotate",
        str(videos / "vtest.avi"),
        "--out",
        str(tmp_path),
        "--every",
        "100",
        "--max-frames",
        "2",
        "--no-wait",
    )
    assert sub.returncode == 0, sub.stderr
    batch_id = sub.stdout.strip()
    assert len(batch_id) == 12
    show = cvfleet("batch", "show", batch_id)
    assert show.returncode == 0, show.stderr
    assert f"batch {batch_id} finished: 1 of 1 video(s) ok" in show.stdout


def test_invalid_settings_are_refused_before_anything_is_queued(fleet, videos, tmp_path):
    from tasks.store import client, key

    before = client().zcard(key("batches"))
    run = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(tmp_path), "--overlap", "1.0")
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1 and "overlap" in run.stderr
    assert client().zcard(key("batches")) == before


def test_tree_avi_whose_header_says_444_frames_is_annotated_from_the_68_that_decode(fleet, tmp_path):
    tree = asset_cache.ensure("tree.avi")
    run = cvfleet("annotate", str(tree), "--out", str(tmp_path / "out"), "--every", "4")
    assert run.returncode == 0, run.stderr + run.stdout
    assert "warning: header says 444 frames, 68 decoded; annotated what decodes" in run.stdout
    meta = json.loads((tmp_path / "out" / "tree" / "video.json").read_text())
    assert (meta["frame_count"], meta["frames_decoded"], len(meta["frames"])) == (444, 68, 17)
    assert len(list((tmp_path / "out" / "tree" / "labels").glob("*.txt"))) == 17


def test_the_whole_loop_annotate_correct_add_a_static_re_run_review_export(fleet, videos, static_file, tmp_path):
    """What a person does: annotate, review, correct a frame, add a static box, re-run (the
    correction kept, no YOLO), export a dataset, and overwrite the corrections on request."""
    out = tmp_path / "out"
    first = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), *CLIP)
    assert first.returncode == 0, first.stderr + first.stdout
    to_review = [line for line in first.stdout.splitlines() if "review first:" in line]
    assert len(to_review) == 1

    review = cvfleet("review", str(out), "--top", "3")
    assert review.returncode == 0, review.stderr
    worst = review.stdout.splitlines()[1].split()[0]
    assert to_review[0].split("review first: ")[1].startswith(worst)
    assert (out / "vtest" / "review_sheet.png").is_file()

    labels = out / "vtest" / "labels"
    corrected = "0 0.500000 0.500000 0.100000 0.200000\n"  # the person redrew the frame as one box
    (labels / f"{worst}.txt").write_text(corrected)
    rerun = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(out), "--static", str(static_file), *CLIP)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    assert "kept 1 corrected frame(s)" in rerun.stdout and "no YOLO, no merging" in rerun.stdout
    static = static_file.read_text()
    assert (labels / f"{worst}.txt").read_text() == corrected + static
    automatic = (out / "vtest" / "labels.auto" / f"{worst}.txt").read_text()
    assert automatic.endswith(static) and automatic != corrected + static
    for other in sorted(labels.iterdir()):
        assert other.read_text().endswith(static)

    export = cvfleet("export", str(out), "--out", str(tmp_path / "dataset"), "--split", "0.6")
    assert export.returncode == 0, export.stderr
    assert "exported 5 frames (3 train / 2 val, split by block) from 1 video(s)" in export.stdout
    exported = {p.name: p.read_text() for p in (tmp_path / "dataset" / "labels").rglob("*.txt")}
    assert exported[f"vtest_{worst}.txt"] == corrected + static

    overwrite = cvfleet(
        "annotate",
        str(videos / "vtest.avi"),
        "--out",
        str(out),
        "--static",
        str(static_file),
        "--overwrite-corrections",
        *CLIP,
    )
    assert overwrite.returncode == 0, overwrite.stderr + overwrite.stdout
    assert "overwrote 1 corrected frame(s)" in overwrite.stdout
    assert (labels / f"{worst}.txt").read_text() == automatic
    (backup,) = (out / "vtest").glob("labels.bak-*")
    assert (backup / f"{worst}.txt").read_text() == corrected + static

    # the detector's standing boxes, confirmed as false: suppressed in every frame but the corrected one
    ignore = out / "vtest" / "static_suggestions.txt"
    assert ignore.read_text()
    (labels / f"{worst}.txt").write_text(corrected)
    quiet = cvfleet(
        "annotate",
        str(videos / "vtest.avi"),
        "--out",
        str(out),
        "--static-ignore",
        str(ignore),
        "--learn-static",
        *CLIP,
    )
    assert quiet.returncode == 0, quiet.stderr + quiet.stdout
    assert "static negative(s) proposed" in quiet.stdout
    from vision.labels import read_yolo_labels
    from vision.static import suppress

    standing = read_yolo_labels(ignore)
    for other in sorted(labels.iterdir()):
        rows = read_yolo_labels(other)
        assert suppress(rows, standing) == rows, other.name
    assert (labels / f"{worst}.txt").read_text() == corrected


def test_skip_still_through_the_fleet_equals_one_process(fleet, videos, tmp_path):
    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    run = cvfleet("annotate", str(videos / "vtest.avi"), "--out", str(tmp_path / "fleet"), "--skip-still", "200", *CLIP)
    assert run.returncode == 0, run.stderr + run.stdout
    settings = AnnotateSettings(
        every=25, max_frames=5, skip_still=200.0, model=ModelSpec(**asset_cache.yolov3_tiny_files())
    )
    annotate_video(videos / "vtest.avi", tmp_path / "bare", settings)
    fleet_labels = sorted((tmp_path / "fleet" / "vtest" / "labels").iterdir())
    assert [p.read_bytes() for p in fleet_labels] == [
        p.read_bytes() for p in sorted((tmp_path / "bare" / "vtest" / "labels").iterdir())
    ]
    assert fleet_labels[0].read_bytes() == fleet_labels[-1].read_bytes()  # everything still: frame 1's boxes


def test_an_upscaled_video_through_the_fleet_is_tiled_at_its_content_scale_as_one_process_tiles_it(fleet, tmp_path):
    import cv2

    from vision.pipeline import annotate_video
    from vision.settings import AnnotateSettings, ModelSpec

    cap = cv2.VideoCapture(str(asset_cache.ensure("vtest.avi")))
    frames = [cv2.resize(cap.read()[1], None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR) for _ in range(3)]
    cap.release()
    video = tmp_path / "zoomed.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (2304, 1728))
    for f in frames:
        writer.write(f)
    writer.release()
    run = cvfleet("annotate", str(video), "--out", str(tmp_path / "fleet"))
    assert run.returncode == 0, run.stderr + run.stdout
    annotate_video(video, tmp_path / "bare", AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files())))
    fleet_dir, bare_dir = tmp_path / "fleet" / "zoomed", tmp_path / "bare" / "zoomed"
    assert json.loads((fleet_dir / "video.json").read_text())["scale"] == 3.0
    assert json.loads((bare_dir / "video.json").read_text())["scale"] == 3.0
    fleet_labels = sorted((fleet_dir / "labels").iterdir())
    assert [p.name for p in fleet_labels] == ["000001.txt", "000002.txt", "000003.txt"]
    assert [p.read_bytes() for p in fleet_labels] == [p.read_bytes() for p in sorted((bare_dir / "labels").iterdir())]
    lines = (fleet_dir / "detections.jsonl").read_text().splitlines()
    raw = {tuple(r["tile"]) for line in lines for r in json.loads(line)["raw"]}
    assert {(w, h) for _, _, w, h in raw} == {(1248, 1248), (2304, 1728)}  # 6 tiles of 3 x 416, and the full frame
