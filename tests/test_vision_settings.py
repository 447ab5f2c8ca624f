"""Annotation settings: JSON round trip, validation, and a fingerprint of what changes labels."""

import dataclasses
import json

import pytest

from vision.errors import VisionError
from vision.settings import AnnotateSettings, ModelSpec

MODEL = ModelSpec(cfg="m/yolov3-tiny.cfg", weights="m/yolov3-tiny.weights", names="m/coco.names")


def test_default_merge_is_nms_over_intersection_over_smaller():
    s = AnnotateSettings(model=MODEL)
    assert (s.merge, s.metric, s.merge_threshold, s.class_agnostic) == ("nms", "ios", 0.5, False)


def test_json_round_trip():
    s = AnnotateSettings(
        every=3,
        max_frames=20,
        tile=512,
        tile_h=384,
        overlap=0.25,
        full_frame=True,
        model=MODEL,
        conf=0.3,
        classes=("person", "car"),
        merge="greedy",
        metric="iou",
    )
    data = json.loads(json.dumps(s.to_json()))
    assert data["model"]["cfg"] == "m/yolov3-tiny.cfg" and data["classes"] == ["person", "car"]
    assert AnnotateSettings.from_json(data) == s


def test_fingerprint_is_stable_and_ignores_int_versus_float():
    assert AnnotateSettings(model=MODEL, fps=5).fingerprint() == AnnotateSettings(model=MODEL, fps=5.0).fingerprint()
    assert len(AnnotateSettings(model=MODEL).fingerprint()) == 64


@pytest.mark.parametrize(
    "change",
    [
        dict(every=2),
        dict(max_frames=10),
        dict(jpeg_quality=90),
        dict(tile=608),
        dict(overlap=0.3),
        dict(full_frame=True),
        dict(conf=0.4),
        dict(nms=0.5),
        dict(classes=("person",)),
        dict(merge="greedy"),
        dict(metric="iou"),
        dict(merge_threshold=0.6),
        dict(class_agnostic=True),
        dict(runtime="opencv"),
        dict(model=dataclasses.replace(MODEL, input_size=608)),
    ],
)
def test_fingerprint_changes_with_every_option(change):
    base = AnnotateSettings(model=MODEL)
    assert dataclasses.replace(base, **change).fingerprint() != base.fingerprint()


def test_detector_spec_holds_model_thresholds_classes_and_runtime():
    s = AnnotateSettings(model=MODEL, conf=0.3, nms=0.4, classes=["person"], runtime="onnxruntime")
    assert s.detector_spec() == {
        "cfg": "m/yolov3-tiny.cfg",
        "weights": "m/yolov3-tiny.weights",
        "names": "m/coco.names",
        "input_size": 416,
        "conf": 0.3,
        "nms": 0.4,
        "classes": ["person"],
        "runtime": "onnxruntime",
    }


def test_sampling_is_the_extract_frames_arguments():
    assert AnnotateSettings(model=MODEL, fps=2, max_frames=5).sampling() == {
        "every": 1,
        "fps": 2.0,
        "max_frames": 5,
        "jpeg_quality": 95,
    }


def test_valid_settings_validate_to_themselves():
    s = AnnotateSettings(model=MODEL)
    assert s.validate() is s


@pytest.mark.parametrize(
    "change,word",
    [
        (dict(every=0), "'every'"),
        (dict(jpeg_quality=0), "jpeg_quality"),
        (dict(tile=0), "tile width"),
        (dict(overlap=1.0), "overlap"),
        (dict(conf=1.5), "conf threshold"),
        (dict(nms=-0.1), "nms threshold"),
        (dict(classes=("",)), "classes"),
        (dict(merge="wbf"), "merge method"),
        (dict(metric="giou"), "merge metric"),
        (dict(model=ModelSpec(names="coco.names")), "no model"),
        (dict(model=dataclasses.replace(MODEL, onnx="y.onnx")), "not both"),
        (dict(model=dataclasses.replace(MODEL, names=None)), "class names"),
        (dict(model=dataclasses.replace(MODEL, input_size=420)), "multiple of 32"),
        (dict(runtime="tensorrt"), "unknown runtime 'tensorrt'; choose one of: opencv, onnxruntime"),
    ],
)
def test_invalid_settings_raise_one_line_vision_error(change, word):
    with pytest.raises(VisionError, match=word) as err:
        AnnotateSettings(**{"model": MODEL, **change}).validate()
    assert "\n" not in str(err.value)


def test_a_string_of_classes_is_refused():
    with pytest.raises(VisionError, match="list of class names"):
        AnnotateSettings(model=MODEL, classes="person")


def test_unknown_keys_in_json_are_refused():
    with pytest.raises(VisionError, match=r"unknown settings \['tile_size'\]"):
        AnnotateSettings.from_json({"tile_size": 416})
    with pytest.raises(VisionError, match=r"unknown model settings \['weight'\]"):
        AnnotateSettings.from_json({"model": {"weight": "x"}})


def test_tiles_under_32_px_are_refused():
    with pytest.raises(VisionError, match="tile of 16 px is too small for a detector"):
        AnnotateSettings(model=MODEL, tile=16).validate()
    with pytest.raises(VisionError, match="tile of 24 px"):
        AnnotateSettings(model=MODEL, tile=416, tile_h=24).validate()


def test_more_than_1024_tiles_per_frame_need_force():
    from vision.pipeline import frame_tiles

    tight = AnnotateSettings(model=MODEL, tile=32, overlap=0.5)
    # 1645 tiles of 32 px, 391 coarse tiles of 64 px, the full frame
    with pytest.raises(VisionError, match=r"cuts a 768x576 frame into 2037 tiles \(more than 1024\).*--force"):
        frame_tiles(768, 576, tight)
    assert len(frame_tiles(768, 576, dataclasses.replace(tight, force=True))) == 2037


def test_strict_and_force_decide_whether_a_video_runs_not_its_labels():
    base = AnnotateSettings(model=MODEL)
    for change in (dict(strict=True), dict(force=True)):
        assert dataclasses.replace(base, **change).fingerprint() == base.fingerprint()


def test_only_merge_options_leave_the_detection_fingerprint_alone():
    base = AnnotateSettings(model=MODEL)
    for change in (dict(merge="greedy"), dict(metric="iou"), dict(merge_threshold=0.3), dict(class_agnostic=True)):
        changed = dataclasses.replace(base, **change)
        assert changed.fingerprint("detection") == base.fingerprint("detection")
        assert changed.fingerprint("merge") != base.fingerprint("merge")
    for change in (dict(tile=320), dict(conf=0.3), dict(full_frame=False), dict(every=2), dict(runtime="opencv")):
        assert dataclasses.replace(base, **change).fingerprint("detection") != base.fingerprint("detection")


def test_runtime_is_a_detection_option_and_round_trips():
    s = AnnotateSettings(model=MODEL, runtime="onnxruntime")
    assert AnnotateSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert s.validate() is s  # onnx and onnxruntime are in the dev extra
    assert s.fingerprint("merge") == AnnotateSettings(model=MODEL).fingerprint("merge")


def test_onnxruntime_is_the_default_runtime_and_opencv_the_one_before_the_option():
    assert AnnotateSettings(model=MODEL).runtime == "onnxruntime"
    assert AnnotateSettings(model=MODEL).detector_spec()["runtime"] == "onnxruntime"


def test_settings_from_before_the_runtime_option_read_as_opencv():
    data = AnnotateSettings(model=MODEL).to_json()
    del data["runtime"]
    assert AnnotateSettings.from_json(data).runtime == "opencv"
