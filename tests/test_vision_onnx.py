"""The second runtime: the Darknet model converted to ONNX (vision/darknet_onnx.py) and run on onnxruntime.

The oracle is cv2.dnn on the same cfg + weights: the raw rows of every YOLO head and the final boxes
must agree. The bundled YOLOv3-tiny is compared on real frames of vtest.avi; the full YOLOv3 layout
(shortcuts, three heads, 608) with random weights of the real file's size; a small cfg exercises the
layer kinds one by one.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vision.boxes import overlap_with
from vision.darknet_onnx import cached_onnx, darknet_to_onnx
from vision.detector import Detector
from vision.errors import VisionError

from support.darknet_cfgs import conv, random_weights, yolo, yolov3_cfg
from support.vision import video_frames

pytestmark = pytest.mark.slow

FRAMES = (0, 130, 260, 390, 520, 650, 780)  # of vtest.avi's 795


@pytest.fixture(scope="module")
def frames(vtest):
    return video_frames(vtest, FRAMES)


def images_of(frames):
    """Each frame whole, and cut into the pipeline's 416 tiles (overlap 0.2)."""
    from vision.tiling import tile_grid

    tiles = tile_grid(768, 576, 416, overlap=0.2)
    return list(frames) + [f[t.y : t.y + t.h, t.x : t.x + t.w] for f in frames for t in tiles]


def cv2_rows(cfg, weights, blob):
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(blob)
    return list(net.getUnconnectedOutLayersNames()), net.forward(net.getUnconnectedOutLayersNames())


def onnx_rows(model: bytes, blob):
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()], session.run(None, {"data": blob})


def assert_rows_match(ours, theirs, thresh=0.2):
    """Box columns and objectness equal to float rounding; class scores too, and zeroed in the same
    places, but for scores within rounding of the head's threshold."""
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=1e-4, atol=1e-5)
        near = np.abs(np.maximum(a[:, 5:], b[:, 5:]) - thresh) < 1e-4
        np.testing.assert_allclose(np.where(near, 0, a[:, 5:]), np.where(near, 0, b[:, 5:]), rtol=1e-4, atol=1e-5)


def match(boxes_a, boxes_b, iou: float = 0.9):
    """One-to-one pairs (same class, IoU > iou) maximising total IoU: [(a, b, iou)]."""
    pairs = []
    for cls in {b.cls for b in boxes_a} & {b.cls for b in boxes_b}:
        a = [b for b in boxes_a if b.cls == cls]
        b = [x for x in boxes_b if x.cls == cls]
        corners_b = np.array([[q.x1, q.y1, q.x2, q.y2] for q in b])
        ious = np.stack([overlap_with(np.array([p.x1, p.y1, p.x2, p.y2]), corners_b) for p in a])
        for i, j in zip(*linear_sum_assignment(ious, maximize=True)):
            if ious[i, j] > iou:
                pairs.append((a[i], b[j], float(ious[i, j])))
    return pairs


# --- the bundled model on real frames -------------------------------------------------------


@pytest.fixture(scope="module")
def runtimes(model_fields):
    return Detector(**model_fields, runtime="opencv"), Detector(**model_fields, runtime="onnxruntime")


def test_raw_head_rows_equal_cv2_dnn_on_real_frames(model_fields, runtimes, frames):
    opencv, ort = runtimes
    assert ort.output_names == opencv.output_names == ["yolo_16", "yolo_23"]
    for image in images_of(frames[:3]):
        assert_rows_match(ort.forward(image), opencv.forward(image))


def test_detections_match_cv2_dnn_one_to_one_on_real_frames(runtimes, frames):
    opencv, ort = runtimes
    total, worst_iou, worst_conf = 0, 1.0, 0.0
    for image in images_of(frames):
        a, b = opencv.detect(image), ort.detect(image)
        pairs = match(a, b)
        assert len(pairs) == len(a) == len(b)
        total += len(pairs)
        worst_iou = min([worst_iou] + [iou for _, _, iou in pairs])
        worst_conf = max([worst_conf] + [abs(p.conf - q.conf) for p, q, _ in pairs])
    print(f"\n{total} boxes on {len(FRAMES)} frames + tiles: min IoU {worst_iou:.6f}, max dconf {worst_conf:.1e}")
    assert total >= 100  # vtest.avi is full of people: the comparison is not vacuous
    assert worst_iou > 0.9 and worst_conf <= 0.02


def test_a_head_with_nms_threshold_suppresses_rows_as_cv2_dnn_does(model_fields, frames, tmp_path):
    cfg = tmp_path / "nms.cfg"
    cfg.write_text(Path(model_fields["cfg"]).read_text().replace("[yolo]", "[yolo]\nnms_threshold=0.4"))
    model = darknet_to_onnx(cfg, model_fields["weights"], 416)
    suppressed = 0
    for frame in frames[:4]:
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (416, 416), swapRB=True, crop=False)
        _, theirs = cv2_rows(cfg, model_fields["weights"], blob)
        _, without = cv2_rows(model_fields["cfg"], model_fields["weights"], blob)
        suppressed += sum(int((w[:, 5:] > 0).sum() - (t[:, 5:] > 0).sum()) for w, t in zip(without, theirs))
        assert_rows_match(onnx_rows(model, blob)[1], theirs)
    assert suppressed > 0  # the in-head NMS did zero some scores


def test_the_converted_model_is_cached_beside_the_weights_and_reused(model_fields, tmp_path):
    for name in ("cfg", "weights", "names"):
        shutil.copy(model_fields[name], tmp_path)
    fields = {k: str(tmp_path / os.path.basename(v)) if k != "input_size" else v for k, v in model_fields.items()}
    Detector(**fields, runtime="onnxruntime")
    (cached,) = tmp_path.glob("*.onnx")
    assert cached.name.startswith("yolov3-tiny.") and len(cached.name.split(".")[1]) == 16
    first = cached.stat()
    Detector(**fields, runtime="onnxruntime")
    again = cached.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # read, not written anew
    files = sorted(p.name for p in tmp_path.iterdir())
    cfg = os.path.basename(model_fields["cfg"])
    assert files == sorted(["coco.names", cfg, "yolov3-tiny.weights", cached.name])  # no temp left


def test_two_processes_converting_at_once_leave_one_whole_file(model_fields, tmp_path):
    for name in ("cfg", "weights"):
        shutil.copy(model_fields[name], tmp_path)
    code = (
        "import sys; from vision.darknet_onnx import cached_onnx\n"
        "print(cached_onnx(sys.argv[1] + '/' + sys.argv[2], sys.argv[1] + '/yolov3-tiny.weights', 416))"
    )
    cfg = os.path.basename(model_fields["cfg"])
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), cfg], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(paths) == 1
    (cached,) = tmp_path.glob("*.onnx")
    assert str(cached) in paths and not list(tmp_path.glob(".*.tmp"))
    import onnxruntime

    assert [o.name for o in onnxruntime.InferenceSession(str(cached)).get_outputs()] == ["yolo_16", "yolo_23"]


def test_another_input_size_or_other_weights_get_their_own_file(model_fields, tmp_path):
    for name in ("cfg", "weights"):
        shutil.copy(model_fields[name], tmp_path)
    cfg, weights = tmp_path / os.path.basename(model_fields["cfg"]), tmp_path / "yolov3-tiny.weights"
    at_416, at_608 = cached_onnx(cfg, weights, 416), cached_onnx(cfg, weights, 608)
    data = bytearray(weights.read_bytes())
    data[-4:] = np.float32(0.5).tobytes()  # one weight changed
    weights.write_bytes(bytes(data))
    changed = cached_onnx(cfg, weights, 416)
    assert len({at_416, at_608, changed}) == 3 and all(p.parent == tmp_path for p in (at_416, at_608, changed))


def test_runtime_must_be_known(model_fields):
    with pytest.raises(VisionError, match="unknown runtime 'tensorflow'; choose one of: opencv, onnxruntime"):
        Detector(**model_fields, runtime="tensorflow")


def test_truncated_weights_do_not_load_on_onnxruntime(model_fields, tmp_path):
    weights = tmp_path / "cut.weights"
    with open(model_fields["weights"], "rb") as f:
        weights.write_bytes(f.read(1_000_000))
    with pytest.raises(VisionError, match="model does not load: .*truncated") as err:
        Detector(**{**model_fields, "weights": str(weights)}, runtime="onnxruntime")
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("*.onnx"))


def test_a_cfg_that_is_not_darknet_does_not_load_on_onnxruntime(model_fields, tmp_path):
    cfg = tmp_path / "broken.cfg"
    cfg.write_text("this is not a darknet cfg\n")
    with pytest.raises(VisionError) as err:
        Detector(**{**model_fields, "cfg": str(cfg)}, runtime="onnxruntime")
    assert str(err.value).startswith(f"model does not load: {cfg}") and "\n" not in str(err.value)


def test_without_onnxruntime_installed_the_error_is_one_line(model_fields):
    code = (
        "import sys; sys.modules['onnxruntime'] = None  # as if not installed\n"
        "from vision.detector import Detector\n"
        "from vision.errors import VisionError\n"
        "from vision.settings import AnnotateSettings, ModelSpec\n"
        f"fields = {model_fields!r}\n"
        "for make in (lambda: Detector(**fields, runtime='onnxruntime'),\n"
        "             lambda: AnnotateSettings(model=ModelSpec(**fields), runtime='onnxruntime').validate()):\n"
        "    try:\n"
        "        make()\n"
        "    except VisionError as e:\n"
        "        print(e)\n"
        "Detector(**fields)  # the class default, opencv, needs neither package\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    message = (
        "--runtime onnxruntime needs the onnx and onnxruntime packages: "
        "pip install onnx onnxruntime, or give --runtime opencv"
    )
    assert out.stdout.splitlines() == [message, message]


# --- the full YOLOv3 layout at 608, random weights --------------------------------------------


@pytest.fixture(scope="module")
def yolov3_608(tmp_path_factory):
    d = tmp_path_factory.mktemp("yolov3")
    cfg = d / "yolov3.cfg"
    cfg.write_text(yolov3_cfg(608))
    return cfg, random_weights(cfg, d / "yolov3.weights", seed=3)


def test_random_weights_have_the_size_of_the_real_yolov3_weights(yolov3_608):
    assert yolov3_608[1].stat().st_size == 248_007_048


def test_full_yolov3_at_608_equals_cv2_dnn(yolov3_608, frames):
    cfg, weights = yolov3_608
    blob = cv2.dnn.blobFromImage(frames[1], 1 / 255.0, (608, 608), swapRB=True, crop=False)
    names, theirs = cv2_rows(cfg, weights, blob)
    our_names, ours = onnx_rows(darknet_to_onnx(cfg, weights, 608), blob)
    assert our_names == names == ["yolo_82", "yolo_94", "yolo_106"]
    assert [o.shape for o in ours] == [(19 * 19 * 3, 85), (38 * 38 * 3, 85), (76 * 76 * 3, 85)]
    assert all(0.05 < (o[:, 5:] > 0).mean() < 0.99 for o in theirs)  # the score threshold is exercised
    assert_rows_match(ours, theirs)


# --- every layer kind, small --------------------------------------------------------------------

SMALL = "\n".join(
    [
        "[net]\nwidth=64\nheight=64\nchannels=3\n",
        conv(8, 3),  # 0
        "[maxpool]\nsize=2\nstride=2\n",  # 1: 32
        conv(16, 3, bn=False, activation="leaky"),  # 2
        "[maxpool]\nsize=2\nstride=1\n",  # 3: darknet pads right and bottom, stays 32
        conv(16, 3, stride=2),  # 4: 16
        conv(8, 1),  # 5
        conv(16, 3, activation="mish"),  # 6
        "[shortcut]\nfrom=-3\nactivation=linear\n",  # 7
        "[maxpool]\nsize=3\nstride=1\n",  # 8: padding 2 split 1/1
        conv(1 * (5 + 2), 1, bn=False, activation="linear"),  # 9: one anchor
        yolo("2", anchors="4,6, 10,12, 20,18", classes=2),  # 10
        "[route]\nlayers=-4\n",  # 11
        conv(8, 1, activation="swish"),  # 12
        "[upsample]\nstride=2\n",  # 13: 32
        "[route]\nlayers=-1, 3\n",  # 14: 8 + 16
        conv(16, 3, activation="logistic"),  # 15
        conv(2 * (5 + 2), 1, bn=False, activation="linear"),  # 16: two anchors
        "[yolo]\nmask=0,1\nanchors=4,6, 10,12, 20,18\nclasses=2\nnum=3\nscale_x_y=1.1\nthresh=0.3\n",  # 17
    ]
)


def test_every_layer_kind_equals_cv2_dnn(tmp_path, frames):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL)
    weights = random_weights(cfg, tmp_path / "small.weights", seed=1)
    blob = cv2.dnn.blobFromImage(frames[0], 1 / 255.0, (64, 64), swapRB=True, crop=False)
    names, theirs = cv2_rows(cfg, weights, blob)
    our_names, ours = onnx_rows(darknet_to_onnx(cfg, weights, 64), blob)
    assert our_names == names
    assert [o.shape for o in ours] == [(16 * 16 * 1, 7), (32 * 32 * 2, 7)]
    assert_rows_match(ours[:1], theirs[:1], thresh=0.2)
    assert_rows_match(ours[1:], theirs[1:], thresh=0.3)


@pytest.mark.parametrize(
    "section,words",
    [
        ("[reorg]\nstride=2\n", "layer type 'reorg' is not supported"),
        ("[route]\nlayers=-1\ngroups=2\ngroup_id=1\n", "route groups"),
        ("[shortcut]\nfrom=5\n", "from must name an earlier layer"),
        ("[convolutional]\nfilters=4\nsize=3\nactivation=gelu\n", "activation 'gelu' is not supported"),
        ("[convolutional]\nfilters=four\nsize=3\n", "filters='four' is not an integer"),
    ],
)
def test_what_the_converter_cannot_do_is_said_in_one_line(tmp_path, section, words):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\n" + conv(4, 3) + section)
    weights = tmp_path / "bad.weights"
    with open(weights, "wb") as f:
        np.array([0, 2, 0, 0, 0], np.int32).tofile(f)  # version 0.2, seen (int64)
        np.zeros(1000, np.float32).tofile(f)
    with pytest.raises(VisionError, match=words) as err:
        darknet_to_onnx(cfg, weights, 32)
    assert "\n" not in str(err.value)


# --- an ONNX export (YOLOv8 layout) on both runtimes ------------------------------------------------


def yolov8_like_export(path, input_size: int = 64):
    """An ONNX file shaped like a YOLOv8 export, (1, 3, s, s) in and (1, 84, 200) out, whose output is a
    constant holding three boxes (in input pixels) plus 0 x the input's mean."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = np.zeros((1, 84, 200), np.float32)
    out[0, :4, 10], out[0, 4 + 0, 10] = [32, 20, 16, 24], 0.9  # a person
    out[0, :4, 50], out[0, 4 + 2, 50] = [10, 40, 8, 8], 0.5  # a car
    out[0, :4, 51], out[0, 4 + 2, 51] = [11, 41, 8, 8], 0.4  # its twin, gone in the NMS
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Reshape", ["nothing", "shape"], ["nothing3"]),
        helper.make_node("Add", ["nothing3", "boxes"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8-like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, input_size, input_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 200])],
        [
            numpy_helper.from_array(np.float32(0), "zero"),
            numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(out, "boxes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("runtime", ["opencv", "onnxruntime"])
def test_an_onnx_export_gives_the_same_boxes_on_either_runtime(model_fields, tmp_path, runtime):
    export = yolov8_like_export(tmp_path / "v8.onnx")
    detector = Detector(onnx=str(export), names=model_fields["names"], input_size=64, runtime=runtime)
    boxes = detector.detect(np.full((128, 256, 3), 100, np.uint8))  # x scales by 256/64, y by 128/64
    assert [(b.cls, round(b.conf, 6), b.x1, b.y1, b.x2, b.y2) for b in boxes] == [
        (0, 0.9, (32 - 8) * 4, (20 - 12) * 2, (32 + 8) * 4, (20 + 12) * 2),
        (2, 0.5, (10 - 4) * 4, (40 - 4) * 2, (10 + 4) * 4, (40 + 4) * 2),
    ]


def test_an_onnx_export_at_the_wrong_input_size_fails_in_one_line_on_onnxruntime(model_fields, tmp_path):
    export = yolov8_like_export(tmp_path / "v8.onnx")
    detector = Detector(onnx=str(export), names=model_fields["names"], input_size=96, runtime="onnxruntime")
    with pytest.raises(VisionError, match="model forward failed at input size 96: .*input size matches") as err:
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert "\n" not in str(err.value)
