"""Frame extraction: numbered JPEGs and video.json from a short real clip; bad videos refused."""

import hashlib
import json
import os

import cv2
import pytest

from vision.errors import VisionError
from vision.frames import extract_frames, keeps_frame


def images(out):
    return sorted(p.name for p in (out / "images").iterdir())


def test_every_frame_is_written_with_one_based_numbers(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path)
    assert images(tmp_path) == [f"{i:06d}.jpg" for i in range(1, 13)]
    assert meta["frames"] == [f"{i:06d}" for i in range(1, 13)]
    assert meta["source_frames"] == list(range(12))


def test_video_json_describes_source_and_sampling(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path, every=5, jpeg_quality=80)
    on_disk = json.loads((tmp_path / "video.json").read_text())
    assert on_disk == {k: v for k, v in meta.items() if k != "reused"}
    assert on_disk["source"] == str(clip12.resolve())
    assert on_disk["sha256"] == hashlib.sha256(clip12.read_bytes()).hexdigest()
    assert (on_disk["width"], on_disk["height"], on_disk["fps"]) == (768, 576, 10.0)
    assert on_disk["frame_count"] == 12 and on_disk["frames_decoded"] == 12
    assert on_disk["frames_written"] == 3 and on_disk["truncated"] is False
    assert on_disk["sampling"] == {"every": 5, "fps": None, "max_frames": None, "jpeg_quality": 80}


def test_every_nth_frame_keeps_source_frames_0_n_2n(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path, every=5)
    assert meta["source_frames"] == [0, 5, 10]
    assert images(tmp_path) == ["000001.jpg", "000002.jpg", "000003.jpg"]


def test_written_frames_are_the_source_frames(clip12, tmp_path):
    extract_frames(clip12, tmp_path, every=5, jpeg_quality=100)
    cap = cv2.VideoCapture(str(clip12))
    source = [cap.read()[1] for _ in range(6)][5]
    written = cv2.imread(str(tmp_path / "images" / "000002.jpg"))
    assert written.shape == (576, 768, 3)
    assert cv2.PSNR(source, written) > 40


def test_max_frames_caps_the_written_frames(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path, every=2, max_frames=4)
    assert meta["source_frames"] == [0, 2, 4, 6] and meta["frames_written"] == 4
    assert images(tmp_path) == [f"{i:06d}.jpg" for i in range(1, 5)]


def test_target_fps_keeps_the_first_frame_of_each_slot(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path, fps=4)  # source 10 fps
    assert meta["source_frames"] == [0, 3, 5, 8, 10]


def test_target_fps_above_the_source_keeps_every_frame():
    assert all(keeps_frame(i, 10.0, 1, 25.0) for i in range(30))


def test_second_call_reuses_the_frames_without_writing(clip12, tmp_path):
    first = extract_frames(clip12, tmp_path, every=3)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    second = extract_frames(clip12, tmp_path, every=3)
    assert first["reused"] is False and second["reused"] is True
    assert {k: v for k, v in second.items() if k != "reused"} == {k: v for k, v in first.items() if k != "reused"}
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()} == stamps


def test_a_missing_image_makes_the_next_call_extract_again(clip12, tmp_path):
    extract_frames(clip12, tmp_path, every=3)
    (tmp_path / "images" / "000002.jpg").unlink()
    assert extract_frames(clip12, tmp_path, every=3)["reused"] is False
    assert images(tmp_path) == [f"{i:06d}.jpg" for i in range(1, 5)]


def test_new_sampling_replaces_the_old_frames(clip12, tmp_path):
    extract_frames(clip12, tmp_path)
    meta = extract_frames(clip12, tmp_path, every=4)
    assert meta["reused"] is False and meta["source_frames"] == [0, 4, 8]
    assert images(tmp_path) == ["000001.jpg", "000002.jpg", "000003.jpg"]


def test_no_temporary_files_are_left_behind(clip12, tmp_path):
    extract_frames(clip12, tmp_path, every=6)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["000001.jpg", "000002.jpg", "images", "video.json"]


def test_the_sample_video_header(vtest, tmp_path):
    meta = extract_frames(vtest, tmp_path, every=100, max_frames=2)
    assert (meta["width"], meta["height"], meta["frame_count"], meta["fps"]) == (768, 576, 795, 10.0)
    assert meta["source_frames"] == [0, 100]


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_video_raises_vision_error(tmp_path):
    with pytest.raises(VisionError) as err:
        extract_frames(tmp_path / "nope.mp4", tmp_path / "out")
    assert one_line(err) == f"video not found: {tmp_path / 'nope.mp4'}; check the path"


def test_random_bytes_named_mp4_raise_vision_error(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(VisionError) as err:
        extract_frames(fake, tmp_path / "out")
    assert one_line(err).startswith(f"not a readable video: {fake}")


def test_zero_frame_video_raises_vision_error(tmp_path):
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    with pytest.raises(VisionError) as err:
        extract_frames(empty, tmp_path / "out")
    assert one_line(err).startswith(f"video has zero frames: {empty}")


def test_video_cut_after_its_header_raises_vision_error(clip12, tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip12.read_bytes()[:4096])
    with pytest.raises(VisionError) as err:
        extract_frames(cut, tmp_path / "out")
    assert f"{cut}" in one_line(err)


def test_truncated_video_writes_the_frames_that_decode(clip12, tmp_path):
    half = tmp_path / "half.avi"
    half.write_bytes(clip12.read_bytes()[: clip12.stat().st_size // 2])
    meta = extract_frames(half, tmp_path / "out")
    assert meta["truncated"] is True and meta["frame_count"] == 12
    assert 0 < meta["frames_written"] == meta["frames_decoded"] < 12
    assert len(images(tmp_path / "out")) == meta["frames_written"]


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(every=0), "'every'"),
        (dict(fps=-1.0), "fps"),
        (dict(every=2, fps=5.0), "not both"),
        (dict(max_frames=0), "max_frames"),
        (dict(jpeg_quality=101), "jpeg_quality"),
    ],
)
def test_bad_sampling_raises_vision_error(clip12, tmp_path, kwargs, word):
    with pytest.raises(VisionError, match=word):
        extract_frames(clip12, tmp_path, **kwargs)
