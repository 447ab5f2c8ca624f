"""Motion-gated tiles: still tiles reuse their key frame's boxes, moving ones run, drift adds up."""

import cv2
import numpy as np
import pytest

from vision.boxes import Box
from vision.errors import VisionError
from vision.motion import gated_jobs, plan_still, reuse_still, tile_key
from vision.tiling import Tile

LEFT, RIGHT = Tile(0, 0, 160, 160), Tile(160, 0, 160, 160)


def write_frames(tmp_path, frames):
    (tmp_path / "images").mkdir()
    for i, image in enumerate(frames, start=1):
        cv2.imwrite(str(tmp_path / "images" / f"{i:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return [f"{i:06d}" for i in range(1, len(frames) + 1)]


def scene(square_x=None, shade=0):
    rng = np.random.default_rng(0)  # the same textured background in every frame
    image = rng.integers(60, 200, (160, 320, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (9, 9), 0)
    image = np.clip(image.astype(np.int16) + shade, 0, 255).astype(np.uint8)
    if square_x is not None:
        cv2.rectangle(image, (square_x, 60), (square_x + 24, 100), (0, 0, 0), -1)
    return image


def test_a_person_walking_keeps_its_tile_running_and_the_empty_tile_still(tmp_path):
    names = write_frames(tmp_path, [scene(20 + 10 * i) for i in range(5)])  # walks inside LEFT
    still = plan_still(tmp_path, names, [LEFT, RIGHT], 8.0)
    assert still == {n: {tile_key(RIGHT): "000001"} for n in names[1:]}


def test_slow_drift_adds_up_against_the_key_frame(tmp_path):
    names = write_frames(tmp_path, [scene(shade=3 * i) for i in range(6)])  # 3 grey levels a frame
    still = plan_still(tmp_path, names, [RIGHT], 8.0)
    keys = [still.get(n, {}).get(tile_key(RIGHT)) for n in names]
    assert keys[0] is None and keys[1] == "000001"  # 3 levels: still
    assert None in keys[2:]  # by 9 levels from the key it runs again, though each step was 3


def test_jobs_leave_still_tiles_out_and_their_boxes_come_from_the_key_frame():
    still = {"000002": {tile_key(RIGHT): "000001"}}
    jobs = [[n, list(t)] for n in ("000001", "000002") for t in (LEFT, RIGHT)]
    assert gated_jobs(jobs, still) == [["000001", list(LEFT)], ["000001", list(RIGHT)], ["000002", list(LEFT)]]
    car = Box(2, 0.9, 200, 10, 260, 50)
    per_frame = {"000001": [(LEFT, []), (RIGHT, [car])], "000002": [(LEFT, [])]}
    assert reuse_still(per_frame, still)["000002"] == [(LEFT, []), (RIGHT, [car])]


@pytest.mark.parametrize("threshold", [0, 255, -1, True, "8"])
def test_a_bad_threshold_is_a_one_line_error(tmp_path, threshold):
    names = write_frames(tmp_path, [scene()])
    with pytest.raises(VisionError, match="grey-level difference"):
        plan_still(tmp_path, names, [LEFT], threshold)
