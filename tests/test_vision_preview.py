"""Previews: boxes drawn on frames, and a contact sheet per video."""

import cv2
import numpy as np
import pytest

from vision.boxes import Box
from vision.errors import VisionError
from vision.frames import extract_frames
from vision.labels import write_yolo_labels
from vision.preview import class_color, contact_sheet, draw_boxes, evenly_spaced, write_previews

NAMES = ["person", "bicycle", "car"]


def test_draw_boxes_outlines_in_the_class_colour_on_a_copy(first_frame):
    original = first_frame.copy()
    drawn = draw_boxes(first_frame, [Box(2, 0.8, 100.0, 200.0, 300.0, 400.0)], NAMES)
    assert np.array_equal(first_frame, original)
    assert tuple(drawn[300, 100]) == class_color(2) and tuple(drawn[399, 250]) == class_color(2)
    assert np.array_equal(drawn[250:350, 150:250], first_frame[250:350, 150:250])


def test_class_colours_differ_between_classes():
    assert len({class_color(c) for c in range(80)}) == 80


def test_contact_sheet_is_a_grid_of_downscaled_images(first_frame):
    sheet = contact_sheet([first_frame] * 5, columns=3, cell_width=256)
    assert sheet.shape == (2 * 192, 3 * 256, 3)
    small = cv2.resize(first_frame, (256, 192), interpolation=cv2.INTER_AREA)
    assert np.array_equal(sheet[192:384, 256:512], small)
    assert not sheet[192:384, 512:768].any()


def test_contact_sheet_of_nothing_is_refused():
    with pytest.raises(VisionError, match="at least one image"):
        contact_sheet([])


def test_evenly_spaced_keeps_first_and_last():
    assert evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9]
    assert evenly_spaced([1, 2], 5) == [1, 2]


def test_write_previews_draws_every_frame_and_one_sheet(clip12, tmp_path):
    meta = extract_frames(clip12, tmp_path, every=4)
    (tmp_path / "labels").mkdir()
    for name in meta["frames"]:
        write_yolo_labels(tmp_path / "labels" / f"{name}.txt", [Box(0, 1.0, 10.0, 10.0, 60.0, 150.0)], 768, 576)
    sheet = write_previews(tmp_path, NAMES, columns=2, cell_width=128)
    assert sheet == tmp_path / "contact_sheet.png"
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert cv2.imread(str(sheet)).shape == (2 * 96, 2 * 128, 3)
    preview = cv2.imread(str(tmp_path / "previews" / "000001.jpg"))
    frame = cv2.imread(str(tmp_path / "images" / "000001.jpg"))
    expected = draw_boxes(frame, [Box(0, 1.0, 10.0, 10.0, 60.0, 150.0)], NAMES)
    encoded = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    assert np.array_equal(preview, cv2.imdecode(encoded, cv2.IMREAD_COLOR))
