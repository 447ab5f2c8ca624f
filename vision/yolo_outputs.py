"""Decode the raw output arrays of YOLO nets into candidate boxes. Pure NumPy, no model needed.

Three layouts, all with box centre and size first:

* Darknet through OpenCV (YOLOv3, YOLOv3-tiny): one (n, 5 + C) array per output layer; cx, cy,
  w, h normalized to 0..1; column 4 objectness; columns 5.. class scores already multiplied by
  objectness.
* YOLOv5 ONNX: (1, n, 5 + C), n anchors (25200 at 640); cx, cy, w, h in input pixels; column 4
  objectness; class scores not multiplied by it.
* YOLOv8 ONNX: (1, 4 + C, n), n anchors (8400 at 640), features first; cx, cy, w, h in input
  pixels, then class scores; no objectness.

The anchor axis is always the longer one, which tells v5 from v8.
"""

import numpy as np

from .errors import VisionError


class Candidates:
    """Boxes before NMS: corners (n, 4) in the units asked for, class ids (n,), confidences (n,)."""

    def __init__(self, corners, class_ids, scores):
        self.corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4)
        self.class_ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(scores, dtype=np.float64).reshape(-1)

    def __len__(self):
        return len(self.scores)


def onnx_layout(shape) -> str:
    """'yolov5' for (1, anchors, 5+C), 'yolov8' for (1, 4+C, anchors); VisionError otherwise."""
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < 5:
        raise VisionError(
            f"unsupported ONNX output shape {tuple(shape)}; expected a YOLOv5 "
            "(1, anchors, 5+classes) or YOLOv8 (1, 4+classes, anchors) export"
        )
    return "yolov5" if shape[1] > shape[2] else "yolov8"


def _select(cxcywh, class_scores, conf, class_ids_allowed, scale_x, scale_y) -> Candidates:
    """Best class per row, keep rows with score >= conf (and an allowed class), to corners."""
    if class_scores.shape[1] == 0:
        return Candidates([], [], [])
    best = np.argmax(class_scores, axis=1)
    score = class_scores[np.arange(len(best)), best]
    keep = score >= conf
    if class_ids_allowed is not None:
        keep &= np.isin(best, np.asarray(sorted(class_ids_allowed), dtype=np.int64))
    b = cxcywh[keep].astype(np.float64)
    corners = np.stack(
        [
            (b[:, 0] - b[:, 2] / 2) * scale_x,
            (b[:, 1] - b[:, 3] / 2) * scale_y,
            (b[:, 0] + b[:, 2] / 2) * scale_x,
            (b[:, 1] + b[:, 3] / 2) * scale_y,
        ],
        axis=1,
    )
    return Candidates(corners, best[keep], score[keep])


def decode_darknet(outputs, conf: float, image_w: int, image_h: int, class_ids=None) -> Candidates:
    """Candidates from OpenCV Darknet output layers, in image pixels (coordinates are 0..1)."""
    rows = np.concatenate([np.asarray(o).reshape(-1, np.asarray(o).shape[-1]) for o in outputs])
    return _select(rows[:, :4], rows[:, 5:], conf, class_ids, image_w, image_h)


def decode_onnx(
    output, conf: float, input_w: int, input_h: int, image_w: int, image_h: int, class_ids=None, num_classes: int = None
) -> Candidates:
    """Candidates from a YOLOv5 or YOLOv8 ONNX output, in image pixels.

    The net saw the image resized to input_w x input_h, so coordinates scale by image/input.
    If `num_classes` is given, the output width must match it for the detected layout.
    """
    output = np.asarray(output)
    layout = onnx_layout(output.shape)
    if layout == "yolov5":
        rows = output[0]
        scores = rows[:, 5:] * rows[:, 4:5]
        width = 5
    else:
        rows = output[0].T
        scores = rows[:, 4:]
        width = 4
    if num_classes is not None and rows.shape[1] != width + num_classes:
        raise VisionError(
            f"ONNX output has {rows.shape[1] - width} classes ({layout} layout) but the "
            f"names file lists {num_classes}; give the names the model was trained on"
        )
    return _select(rows[:, :4], scores, conf, class_ids, image_w / input_w, image_h / input_h)
