"""Parallel extraction: a video cut into segments, each seeking to its first frame, gives exactly the
frames (names, JPEG bytes) and video.json of one pass. Real OpenCV on real files; the join is pure."""

import json
import math

import cv2
import pytest

from vision.errors import VisionError
from vision.frames import (
    extract_frames,
    extract_segment,
    frames_before,
    join_segments,
    keeps_frame,
    pixels_sha256,
    probe,
    reusable_meta,
    sampling_settings,
    segment_bounds,
    write_meta,
)

from support.vision import write_clip

CLIP_FRAMES = 60
SAMPLINGS = {
    "every-1": dict(),
    "every-3": dict(every=3),
    "fps-7": dict(fps=7.0),  # from 25 fps: a ratio of 0.28
    "max-14": dict(every=2, max_frames=14),  # the 15th kept frame (source 28) lies in a middle segment
}


@pytest.fixture(scope="session")
def clips(vtest, tmp_path_factory):
    root = tmp_path_factory.mktemp("segment-clips")
    return {
        "mp4v.mp4": write_clip(vtest, root / "mp4v.mp4", CLIP_FRAMES, 25.0, "mp4v"),
        "mjpg.avi": write_clip(vtest, root / "mjpg.avi", CLIP_FRAMES, 25.0, "MJPG"),
        "xvid.avi": write_clip(vtest, root / "xvid.avi", CLIP_FRAMES, 25.0, "XVID"),
    }


def segmented(video, out, segments: int, **kwargs):
    """Extract `video` in `segments` parts, last part first, into one dir; join; write video.json."""
    sampling = sampling_settings(**kwargs)
    info = json.loads(json.dumps(probe(video)))  # as the task gets it: through JSON
    bounds = segment_bounds(info["frame_count"], segments)
    parts = {}
    for k in reversed(range(len(bounds))):
        start, stop = bounds[k]
        parts[k] = json.loads(json.dumps(extract_segment(video, out, info, sampling, start, stop)))
    ordered = [parts[k] for k in range(len(bounds))]
    meta = join_segments(info, sampling, ordered)
    assert meta is not None, "a seek was not exact"
    write_meta(out, meta)
    return meta, ordered


def files(out) -> dict:
    return {p.name: p.read_bytes() for p in sorted((out / "images").iterdir())}


def assert_same_as_one_pass(video, tmp_path, segment_counts=(2, 3, 5), **kwargs):
    single = extract_frames(video, tmp_path / "single", **kwargs)
    assert single.pop("reused") is False
    expected = files(tmp_path / "single")
    assert sorted(expected) == [f"{n}.jpg" for n in single["frames"]]
    runs = {}
    for n in segment_counts:
        out = tmp_path / f"seg{n}"
        meta, parts = segmented(video, out, n, **kwargs)
        assert meta == single
        assert (out / "video.json").read_bytes() == (tmp_path / "single" / "video.json").read_bytes()
        got = files(out)
        assert sorted(got) == sorted(expected)
        assert got == expected  # same pixels, same JPEG bytes
        runs[n] = parts
    return single, runs


# --- frames_before and segment_bounds: pure ---------------------------------------------------


def brute_count(start, source_fps, sampling):
    return sum(keeps_frame(i, source_fps, sampling["every"], sampling["fps"]) for i in range(start))


@pytest.mark.parametrize("every", [1, 2, 3, 4, 5, 7, 10, 25])
def test_frames_before_counts_every_nth_exactly(every):
    sampling = sampling_settings(every=every)
    for start in range(0, 300):
        assert frames_before(start, 25.0, sampling) == brute_count(start, 25.0, sampling), start


@pytest.mark.parametrize(
    "source_fps,fps",
    [(25.0, 7.0), (10.0, 3.0), (29.97, 10.0), (30.0, 29.97), (25.0, 24.999), (30.0, 1.0), (10.0, 10.0), (10.0, 25.0)],
)
def test_frames_before_counts_fps_sampling_exactly(source_fps, fps):
    sampling = sampling_settings(fps=fps)
    for start in range(0, 400):
        assert frames_before(start, source_fps, sampling) == brute_count(start, source_fps, sampling), start
    # far into a long video: the count over a window matches the window's brute-force count
    for a in (10**6 + 17, 10**8 + 3):
        window = sum(keeps_frame(i, source_fps, 1, fps) for i in range(a, a + 300))
        assert frames_before(a + 300, source_fps, sampling) - frames_before(a, source_fps, sampling) == window


def test_frames_before_without_a_source_fps_keeps_every_frame():
    assert frames_before(50, 0.0, sampling_settings(fps=5.0)) == 50


def test_segment_bounds_cover_the_video_and_leave_the_end_open():
    assert segment_bounds(795, 3) == [(0, 265), (265, 530), (530, None)]
    assert segment_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, None)]
    assert segment_bounds(3, 5) == [(0, 1), (1, 2), (2, None)]  # never an empty segment
    assert segment_bounds(100, 1) == segment_bounds(100, 0) == segment_bounds(0, 4) == [(0, None)]
    for count, n in [(795, 7), (61, 5), (2, 2)]:
        bounds = segment_bounds(count, n)
        assert bounds[0][0] == 0 and bounds[-1][1] is None
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


# --- segments of real files give the single pass's frames ---------------------------------------


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=list(SAMPLINGS))
@pytest.mark.parametrize("clip", ["mp4v.mp4", "mjpg.avi", "xvid.avi"])
def test_segments_give_the_single_pass_frames_and_video_json(clips, clip, sampling, tmp_path):
    single, runs = assert_same_as_one_pass(clips[clip], tmp_path, **SAMPLINGS[sampling])
    assert single["frame_count"] == CLIP_FRAMES and single["fps"] == 25.0
    for parts in runs.values():
        *inner, last = parts
        assert last["stop"] is None
        for part in inner:  # every bounded part ran through its range and saw the next part's first frame
            if not part["capped"]:
                assert part["decoded"] == part["stop"] - part["start"] and not part["ended"] and part["next"]
    if sampling == "max-14":
        assert single["frames_written"] == 14 and single["frames_decoded"] is None
        assert [p["capped"] for p in runs[3]] == [False, True, True]  # cut inside the middle segment
        assert [p["capped"] for p in runs[5]] == [False, False, True, True, True]
        assert runs[3][1]["names"][-1] == "000014" and runs[3][2]["names"] == []  # past the cap: nothing
    else:
        assert single["frames_decoded"] == CLIP_FRAMES and not single["truncated"]
        assert runs[5][-1]["ended"] and not runs[5][-1]["capped"]


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [dict(every=25), dict(fps=1.5)], ids=["every-25", "fps-1.5"])
def test_segments_of_the_whole_sample_video(vtest, kwargs, tmp_path):
    """vtest.avi (MP43 in AVI, 795 frames at 10 fps) to its end; the last of 5 segments seeks to 636."""
    single, runs = assert_same_as_one_pass(vtest, tmp_path, **kwargs)
    assert single["frames_decoded"] == 795 and single["truncated"] is False
    assert runs[5][-1]["start"] == 636 and runs[5][-1]["stop"] is None and runs[5][-1]["ended"]


def test_a_bounded_segment_of_the_sample_video(vtest, tmp_path):
    sampling = sampling_settings(every=3)
    info = probe(vtest)
    part = extract_segment(vtest, tmp_path, info, sampling, 600, 612)
    assert part["names"] == [f"{n:06d}" for n in range(201, 205)] and part["sources"] == [600, 603, 606, 609]
    assert part["decoded"] == 12 and not part["ended"] and not part["capped"]
    assert (part["width"], part["height"]) == (768, 576)
    cap = cv2.VideoCapture(str(vtest))
    for _ in range(600):
        cap.grab()
    frames = {600 + i: cap.read()[1] for i in range(13)}
    cap.release()
    assert part["first"] == pixels_sha256(frames[600]) and part["next"] == pixels_sha256(frames[612])
    written = cv2.imread(str(tmp_path / "images" / "000202.jpg"))
    ok, jpeg = cv2.imencode(".jpg", frames[603], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert (tmp_path / "images" / "000202.jpg").read_bytes() == jpeg.tobytes() and written.shape == (576, 768, 3)


@pytest.fixture(scope="session")
def overcounting(vtest, clips, tmp_path_factory):
    """Files cut by bytes: their headers still announce every frame."""
    root = tmp_path_factory.mktemp("cut")
    quarter = root / "vtest-quarter.avi"
    quarter.write_bytes(vtest.read_bytes()[: vtest.stat().st_size // 4])
    half = root / "mjpg-half.avi"
    half.write_bytes(clips["mjpg.avi"].read_bytes()[: clips["mjpg.avi"].stat().st_size // 2])
    return {"vtest-quarter.avi": quarter, "mjpg-half.avi": half}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vtest-quarter.avi", "mjpg-half.avi"])
def test_a_header_that_overcounts_gives_the_single_pass_frames(overcounting, name, tmp_path):
    single, runs = assert_same_as_one_pass(overcounting[name], tmp_path, every=2)
    assert single["truncated"] is True and 0 < single["frames_decoded"] < single["frame_count"]
    for parts in runs.values():
        assert sum(p["ended"] for p in parts) >= 1


def test_on_frame_runs_after_each_frame_file_lands(clips, tmp_path):
    sampling = sampling_settings(every=4)
    info = probe(clips["mjpg.avi"])
    seen = []

    def on_frame(name, source, image):
        assert (tmp_path / "images" / f"{name}.jpg").is_file()
        seen.append((name, source, image.shape))

    part = extract_segment(clips["mjpg.avi"], tmp_path, info, sampling, 10, 30, on_frame=on_frame)
    assert seen == [(n, s, (576, 768, 3)) for n, s in zip(part["names"], part["sources"])]
    assert part["sources"] == [12, 16, 20, 24, 28] and part["names"][0] == "000004"


# --- probe and reusable_meta --------------------------------------------------------------------


def test_probe_reads_the_header(vtest):
    info = probe(vtest)
    assert info == {
        "source": str(vtest.resolve()),
        "sha256": info["sha256"],
        "width": 768,
        "height": 576,
        "fps": 10.0,
        "frame_count": 795,
    }
    assert len(info["sha256"]) == 64


def test_probe_refuses_what_extract_frames_refuses(tmp_path):
    with pytest.raises(VisionError, match="video not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VisionError, match="is a directory"):
        probe(tmp_path)
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\0" * 4096)
    with pytest.raises(VisionError, match="not a readable video"):
        probe(fake)


def test_reusable_meta_is_the_previous_complete_extraction(clips, tmp_path):
    video = clips["mjpg.avi"]
    meta = extract_frames(video, tmp_path, every=5)
    info, sampling = probe(video), sampling_settings(every=5)
    assert reusable_meta(tmp_path, info, sampling) == {k: v for k, v in meta.items() if k != "reused"}
    assert reusable_meta(tmp_path, info, sampling_settings(every=6)) is None
    assert reusable_meta(tmp_path, {**info, "sha256": "0" * 64}, sampling) is None
    (tmp_path / "images" / "000002.jpg").unlink()
    assert reusable_meta(tmp_path, info, sampling) is None
    assert reusable_meta(tmp_path / "elsewhere", info, sampling) is None


# --- join_segments: pure ------------------------------------------------------------------------

INFO = {"source": "/v.avi", "sha256": "ab" * 32, "width": 64, "height": 48, "fps": 10.0, "frame_count": 9}


def part(start, stop, first, after, names=None, decoded=None, ended=False, capped=False):
    decoded = (stop - start if stop is not None else 0) if decoded is None else decoded
    names = list(range(start, start + decoded)) if names is None else names
    return {
        "start": start,
        "stop": stop,
        "names": [f"{i + 1:06d}" for i in names],
        "sources": list(names),
        "decoded": decoded,
        "ended": ended,
        "capped": capped,
        "first": first,
        "next": after,
        "width": 64 if names else None,
        "height": 48 if names else None,
    }


def test_join_writes_what_one_pass_writes():
    sampling = sampling_settings()
    parts = [part(0, 3, "f0", "f3"), part(3, 6, "f3", "f6"), part(6, None, "f6", None, decoded=3, ended=True)]
    meta = join_segments(INFO, sampling, parts)
    assert meta == {
        **{k: INFO[k] for k in ("source", "sha256", "width", "height", "fps", "frame_count")},
        "frames_decoded": 9,
        "truncated": False,
        "frames_written": 9,
        "sampling": sampling,
        "frames": [f"{i:06d}" for i in range(1, 10)],
        "source_frames": list(range(9)),
    }


def test_join_returns_none_when_a_seek_missed_its_frame():
    sampling = sampling_settings()
    parts = [part(0, 3, "f0", "f3"), part(3, 6, "f4", "f7"), part(6, None, "f7", None, decoded=3, ended=True)]
    assert join_segments(INFO, sampling, parts) is None
    # the frame after a range did not decode in sequence, yet the next part decoded after its seek
    parts = [part(0, 3, "f0", None), part(3, None, "f3", None, decoded=6, ended=True)]
    assert join_segments(INFO, sampling, parts) is None
    # the frame after a range decoded, yet the next part's seek decoded nothing
    parts = [part(0, 3, "f0", "f3"), part(3, None, None, None, decoded=0, ended=True)]
    assert join_segments(INFO, sampling, parts) is None


def test_join_stops_at_the_first_part_that_ended():
    sampling = sampling_settings()
    parts = [part(0, 3, "f0", "f3"), part(3, 6, "f3", None, decoded=2, ended=True)]
    parts.append(part(6, None, "x", None, ended=True))  # after the end: its frames are not the video's
    meta = join_segments(INFO, sampling, parts)
    assert meta["frames"] == [f"{i:06d}" for i in range(1, 6)] and meta["frames_decoded"] == 5
    assert meta["truncated"] is True
    # a file that ends exactly at a border: no frame after the range, nothing after the seek
    parts = [part(0, 3, "f0", None), part(3, None, None, None, decoded=0, ended=True)]
    meta = join_segments(INFO, sampling, parts)
    assert meta["frames_decoded"] == 3 and meta["frames_written"] == 3


def test_join_stops_at_the_part_that_reached_max_frames():
    sampling = sampling_settings(max_frames=4)
    parts = [part(0, 3, "f0", "f3"), part(3, 6, "f3", None, names=[3], capped=True), part(6, None, "x", None)]
    meta = join_segments(INFO, sampling, parts)
    assert meta["frames"] == ["000001", "000002", "000003", "000004"]
    assert meta["frames_decoded"] is None and meta["truncated"] is False


def test_join_raises_when_nothing_decodes():
    nothing = [part(0, None, None, None, decoded=0, ended=True)]
    with pytest.raises(VisionError, match="no frame of /v.avi decodes .its header announces 9"):
        join_segments(INFO, sampling_settings(), nothing)
    with pytest.raises(VisionError, match="video has zero frames: /v.avi"):
        join_segments({**INFO, "frame_count": 0}, sampling_settings(), nothing)


def test_join_refuses_parts_that_do_not_tile_the_video():
    sampling = sampling_settings()
    with pytest.raises(ValueError):
        join_segments(INFO, sampling, [part(0, 3, "f0", "f3"), part(4, None, "f3", None, ended=True)])
    with pytest.raises(ValueError):
        join_segments(INFO, sampling, [part(0, 3, "f0", "f3")])


def test_write_meta_removes_frames_it_does_not_name(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for n in ("000001", "000002", "000007"):
        (images / f"{n}.jpg").write_bytes(b"x")
    (images / "notes.txt").write_text("kept")
    meta = {"frames": ["000001", "000002"], "value": math.pi}
    write_meta(tmp_path, meta)
    assert sorted(p.name for p in images.iterdir()) == ["000001.jpg", "000002.jpg", "notes.txt"]
    assert json.loads((tmp_path / "video.json").read_text()) == meta
