"""The detector: real YOLOv3-tiny on real frames of vtest.avi; ONNX layouts on synthetic arrays."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.boxes import Box
from vision.detector import Detector, get_detector
from vision.errors import VisionError
from vision.merge import to_frame
from vision.tiling import tile_grid
from vision.yolo_outputs import decode_darknet, decode_onnx, onnx_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from merge_baselines import merge_boxes  # noqa: E402  (benchmarks/ is scripts, not a package)

PERSON = 0


@pytest.fixture(scope="module")
def detector(model_fields):
    return get_detector({**model_fields, "conf": 0.25, "nms": 0.45})


def test_finds_people_in_the_first_frame_of_vtest(detector, first_frame):
    boxes = detector.detect(first_frame)
    people = [b for b in boxes if b.cls == PERSON]
    assert len(people) >= 3
    assert all(b.height > b.width for b in people)  # walking people are upright
    assert all(0 <= b.x1 < b.x2 <= 768 and 0 <= b.y1 < b.y2 <= 576 for b in boxes)
    assert all(b.conf >= 0.25 for b in boxes)


def test_tiles_find_at_least_the_people_of_the_whole_frame(detector, first_frame):
    boxes = []
    for t in tile_grid(768, 576, 416, overlap=0.2):
        boxes += to_frame(detector.detect(first_frame[t.y : t.y + t.h, t.x : t.x + t.w]), t)
    merged = merge_boxes(boxes, "nms", "ios", 0.5)
    whole = [b for b in detector.detect(first_frame) if b.cls == PERSON]
    assert sum(b.cls == PERSON for b in merged) >= len(whole)


def test_boxes_come_in_canonical_order(detector, first_frame):
    boxes = detector.detect(first_frame)
    assert boxes == sorted(boxes, key=Box.sort_key)


def test_class_filter_keeps_exactly_the_persons(model_fields, detector, first_frame):
    only_people = get_detector({**model_fields, "conf": 0.25, "nms": 0.45, "classes": ["person"]})
    assert only_people.detect(first_frame) == [b for b in detector.detect(first_frame) if b.cls == PERSON]


def test_a_higher_confidence_threshold_keeps_a_subset(model_fields, detector, first_frame):
    strict = get_detector({**model_fields, "conf": 0.6, "nms": 0.45})
    boxes = strict.detect(first_frame)
    assert boxes == [b for b in detector.detect(first_frame) if b.conf >= 0.6]


def test_unknown_class_name_lists_the_valid_names(model_fields):
    with pytest.raises(VisionError, match=r"unknown class names \['pedestrian'\]; valid names: person, bicycle"):
        Detector(**model_fields, classes=["pedestrian"])


def test_detection_is_repeatable(detector, first_frame):
    crop = first_frame[160:576, 352:768]
    assert [detector.detect(first_frame), detector.detect(crop)] == [
        detector.detect(first_frame),
        detector.detect(crop),
    ]


def test_detect_leaves_the_thread_setting_alone_and_threads_do_not_change_results(detector, first_frame):
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = detector.detect(first_frame)
        assert cv2.getNumThreads() == 1
        cv2.setNumThreads(2)
        assert detector.detect(first_frame) == one
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_get_detector_loads_once_per_spec(model_fields):
    a = get_detector({**model_fields, "conf": 0.3})
    b = get_detector({"conf": 0.3, **dict(reversed(list(model_fields.items())))})
    assert a is b
    assert get_detector({**model_fields, "conf": 0.31}) is not a


def test_missing_model_file_raises_vision_error(model_fields, tmp_path):
    with pytest.raises(VisionError, match="model Darknet weights file not found"):
        Detector(**{**model_fields, "weights": str(tmp_path / "yolov3.weights")})


def test_model_that_does_not_load_raises_a_one_line_vision_error(model_fields, tmp_path):
    cfg = tmp_path / "broken.cfg"
    cfg.write_text("this is not a darknet cfg\n")
    with pytest.raises(VisionError) as err:
        Detector(**{**model_fields, "cfg": str(cfg)})
    assert str(err.value).startswith(f"model does not load: {cfg}") and "\n" not in str(err.value)


def test_truncated_weights_raise_vision_error(model_fields, tmp_path):
    weights = tmp_path / "cut.weights"
    with open(model_fields["weights"], "rb") as f:
        weights.write_bytes(f.read(1_000_000))
    with pytest.raises(VisionError, match="model does not load"):
        Detector(**{**model_fields, "weights": str(weights)})


def test_unknown_spec_key_raises_vision_error(model_fields):
    with pytest.raises(VisionError, match="unknown detector spec keys"):
        Detector.from_spec({**model_fields, "treshold": 0.5})


def test_input_size_must_be_a_multiple_of_32(model_fields):
    with pytest.raises(VisionError, match="multiple of 32"):
        Detector(**{**model_fields, "input_size": 400})


def test_detect_refuses_a_non_image(detector):
    with pytest.raises(VisionError, match="BGR image"):
        detector.detect(np.zeros((10, 10), dtype=np.uint8))


# --- raw output decoding, no model needed -------------------------------------------------


def test_darknet_rows_decode_to_image_pixels():
    row = np.zeros((1, 85), dtype=np.float32)
    row[0, :5] = [0.5, 0.25, 0.1, 0.2, 0.9]
    row[0, 5 + 2] = 0.8  # OpenCV already multiplied by objectness
    cand = decode_darknet([row, np.zeros((3, 85), dtype=np.float32)], 0.25, 400, 200)
    assert cand.class_ids.tolist() == [2]
    assert cand.scores.tolist() == pytest.approx([0.8])
    assert cand.corners.tolist()[0] == pytest.approx([180.0, 30.0, 220.0, 70.0])
    assert len(cand) == 1


def yolov5_output(rows):
    out = np.zeros((1, 25200, 85), dtype=np.float32)
    for i, (cx, cy, w, h, obj, cls, score) in enumerate(rows):
        out[0, i * 97, :5] = [cx, cy, w, h, obj]
        out[0, i * 97, 5 + cls] = score
    return out


def test_yolov5_layout_multiplies_objectness_and_scales_from_the_input_size():
    out = yolov5_output(
        [
            (320, 320, 64, 128, 0.9, 0, 0.8),  # 0.72: kept
            (100, 100, 10, 10, 0.5, 3, 0.4),
        ]
    )  # 0.20: below 0.25
    assert onnx_layout(out.shape) == "yolov5"
    cand = decode_onnx(out, 0.25, 640, 640, 1280, 960, num_classes=80)
    assert cand.class_ids.tolist() == [0]
    assert cand.scores.tolist() == pytest.approx([0.72])
    assert cand.corners.tolist()[0] == pytest.approx([576.0, 384.0, 704.0, 576.0])
    assert len(cand) == 1


def test_yolov8_layout_has_no_objectness_and_is_features_first():
    out = np.zeros((1, 84, 8400), dtype=np.float32)
    out[0, :4, 10] = [320, 160, 32, 64]
    out[0, 4 + 5, 10] = 0.6
    out[0, :4, 20] = [50, 50, 10, 10]
    out[0, 4 + 1, 20] = 0.1
    assert onnx_layout(out.shape) == "yolov8"
    cand = decode_onnx(out, 0.25, 640, 640, 640, 640, num_classes=80)
    assert cand.class_ids.tolist() == [5]
    assert cand.scores.tolist() == pytest.approx([0.6])
    assert cand.corners.tolist()[0] == pytest.approx([304.0, 128.0, 336.0, 192.0])
    assert len(cand) == 1


def test_onnx_class_filter():
    out = yolov5_output([(320, 320, 64, 128, 1.0, 0, 0.9), (100, 100, 20, 20, 1.0, 2, 0.9)])
    cand = decode_onnx(out, 0.25, 640, 640, 640, 640, class_ids={2})
    assert cand.class_ids.tolist() == [2]


def test_onnx_output_with_another_class_count_than_the_names_raises():
    with pytest.raises(VisionError, match="ONNX output has 80 classes"):
        decode_onnx(np.zeros((1, 84, 8400), dtype=np.float32), 0.25, 640, 640, 640, 640, num_classes=3)


def test_unknown_onnx_layout_raises():
    with pytest.raises(VisionError, match="unsupported ONNX output shape"):
        onnx_layout((1, 1000, 4))
