"""The content scale: an upscaled video is tiled at its content's resolution, camera footage at 1:1."""

import json

import cv2
import numpy as np
import pytest

from vision.content_scale import knee_scale
from vision.pipeline import annotate_video, content_scale, frame_tiles, plan_tiles
from vision.settings import AnnotateSettings, ModelSpec
from vision.tiling import Tile
from workers import asset_cache

from support.vision import video_frames


def vtest(indices) -> list:
    return video_frames(asset_cache.ensure("vtest.avi"), indices)


def grays(images) -> list:
    def through_jpeg(image):
        return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_COLOR)

    return [cv2.cvtColor(through_jpeg(i), cv2.COLOR_BGR2GRAY).astype(np.float32) for i in images]


def upscaled(frames, factor, interpolation=cv2.INTER_LINEAR) -> list:
    return [cv2.resize(f, None, fx=factor, fy=factor, interpolation=interpolation) for f in frames]


def write_video(frames, path):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="module")
def frames():
    return vtest([100, 400, 700])


@pytest.fixture(scope="module")
def settings():
    return AnnotateSettings(model=ModelSpec(**asset_cache.yolov3_tiny_files()), conf=0.3)


def test_camera_footage_reads_as_scale_one(frames):
    assert knee_scale(grays(frames)) == 1.0
    assert knee_scale(grays([np.vstack([np.hstack(frames)] * 3)])) == 1.0  # a 3x3 grid of native frames
    cap = cv2.VideoCapture(str(asset_cache.ensure("tree.avi")))
    tree = [cap.read()[1] for _ in range(3)]
    cap.release()
    assert knee_scale(grays(tree)) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "factor,interpolation,expected",
    [(3, cv2.INTER_LINEAR, 3.0), (3, cv2.INTER_CUBIC, 3.0), (2, cv2.INTER_LINEAR, 2.0), (4, cv2.INTER_LINEAR, 4.0)],
)
def test_an_upscale_reads_as_its_factor(frames, factor, interpolation, expected):
    assert knee_scale(grays(upscaled(frames, factor, interpolation))) == expected


@pytest.mark.slow
def test_a_mild_upscale_stays_at_one_and_a_reading_never_exceeds_the_upscale(frames):
    assert knee_scale(grays(upscaled(frames, 1.5, cv2.INTER_CUBIC))) == 1.0
    assert knee_scale(grays(upscaled(frames, 4, cv2.INTER_LANCZOS4))) <= 4.0


def test_tiles_at_scale_three_are_three_times_wider_on_a_lattice_three_times_coarser(settings):
    tiles = frame_tiles(2304, 1728, settings, 3.0)
    assert tiles[-1] == Tile(0, 0, 2304, 1728)  # the full-frame pass
    grid = tiles[:-1]
    assert {(t.w, t.h) for t in grid} == {(1248, 1248)}
    assert all(t.x % 96 == 0 or t.x + t.w == 2304 for t in grid)
    assert all(t.y % 96 == 0 or t.y + t.h == 1728 for t in grid)
    assert len(grid) == 6 and len(frame_tiles(2304, 1728, settings)) == 55  # 42 + 12 coarse + the full frame


def test_frames_in_colour_read_as_their_gray(frames):
    assert content_scale(upscaled(frames, 3)) == 3.0
    assert content_scale(frames) == 1.0


@pytest.mark.slow
def test_an_upscaled_video_is_annotated_at_its_content_scale(frames, settings, tmp_path):
    video = write_video(upscaled(frames, 3), tmp_path / "zoomed.avi")
    summary = annotate_video(video, tmp_path / "out", settings)
    meta = json.loads((tmp_path / "out" / "zoomed" / "video.json").read_text())
    assert meta["scale"] == 3.0
    assert {(t.w, t.h) for t in plan_tiles(meta, settings)[:-1]} == {(1248, 1248)}
    assert summary["counts"].get("person", 0) >= 3
