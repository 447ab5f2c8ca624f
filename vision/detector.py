"""A YOLO detector over OpenCV's dnn module or onnxruntime: Darknet (.cfg + .weights) or ONNX (YOLOv5/v8).

Two runtimes run the same model: 'opencv' (`cv2.dnn`, this class's default: it needs nothing
else) and 'onnxruntime' (the annotation default, `AnnotateSettings.runtime`: the Darknet model
converted by `darknet_onnx` into a graph whose outputs are `cv2.dnn`'s, cached beside the
weights; an ONNX export as it is). Same boxes within float rounding.

One image per forward pass: measured on this kind of CPU, a batch blob of 6 tiles is not faster
than 6 single forwards, and single forwards make each tile's result independent of what else
was in the batch (deterministic).

The net is loaded once per process: `get_detector(spec)` caches by the spec's JSON. Threads are
the caller's business (`cv2.setNumThreads` in the worker); `detect` leaves that setting alone.
"""

import functools
import json
from pathlib import Path

import cv2
import numpy as np

from .boxes import Box, sort_boxes
from .errors import VisionError
from .labels import read_classes
from .onnx_runtime import OnnxRuntimeNet, darknet_net
from .yolo_outputs import decode_darknet, decode_onnx


def _existing(path, what: str) -> str:
    if not path:
        raise VisionError(f"model {what} file not given")
    p = Path(path)
    if not p.is_file():
        raise VisionError(f"model {what} file not found: {p}; check the path or run `cvfleet assets fetch`")
    return str(p)


def _cv2_reason(error: Exception) -> str:
    """The last non-empty line of an OpenCV error: the one that says what went wrong."""
    lines = [s.strip() for s in str(error).splitlines() if s.strip()]
    return lines[-1] if lines else error.__class__.__name__


DARKNET_HEADER_BYTES = (16, 20)  # major, minor, revision (int32), seen (int32 or int64)


def check_darknet_weights(net, cfg, weights) -> None:
    """VisionError unless the weights file holds exactly the floats the cfg's layers need.

    OpenCV loads a truncated .weights file without complaint and leaves the missing weights
    as garbage, so the size is checked here: a header plus 4 bytes per conv/batch-norm parameter.
    """
    params = sum(
        blob.size
        for i in range(1, len(net.getLayerNames()) + 1)
        for layer in [net.getLayer(i)]
        if layer.type in ("Convolution", "BatchNorm")
        for blob in layer.blobs
    )
    size = Path(weights).stat().st_size
    if size - 4 * params not in DARKNET_HEADER_BYTES:
        raise VisionError(
            f"model does not load: {weights} has {size} bytes but {cfg} needs "
            f"{4 * params + DARKNET_HEADER_BYTES[1]}: the weights are truncated or "
            "belong to another cfg"
        )


RUNTIMES = ("opencv", "onnxruntime")


class Detector:
    """YOLO inference on one image at a time, boxes in that image's pixels.

    spec keys: 'cfg' + 'weights' (Darknet) or 'onnx'; 'names' (class names file, required);
    'input_size' (square net input in pixels, default 416; an ONNX export's fixed size, often 640);
    'conf' (keep boxes with class confidence >= conf, default 0.25); 'nms' (IoU threshold of
    the class-wise NMS within one image, default 0.45); 'classes' (class names to keep, default all);
    'runtime' ('opencv' or 'onnxruntime', default 'opencv').
    """

    def __init__(
        self,
        cfg=None,
        weights=None,
        onnx=None,
        names=None,
        input_size: int = 416,
        conf: float = 0.25,
        nms: float = 0.45,
        classes=None,
        runtime: str = "opencv",
    ):
        if not isinstance(input_size, int) or input_size <= 0 or input_size % 32:
            raise VisionError(f"model input size must be a positive multiple of 32, got {input_size!r}")
        if not 0.0 <= conf <= 1.0 or not 0.0 <= nms <= 1.0:
            raise VisionError(f"confidence and NMS thresholds must be in [0, 1], got {conf}, {nms}")
        self.names = read_classes(_existing(names, "class names"))
        self.input_size = input_size
        self.conf = float(conf)
        self.nms = float(nms)
        self.class_ids = None if not classes else self._class_ids(classes)
        if onnx and (cfg or weights):
            raise VisionError("give either an ONNX model or a Darknet cfg + weights, not both")
        self.kind = "onnx" if onnx else "darknet"
        if runtime not in RUNTIMES:
            raise VisionError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        self.runtime = runtime
        self.net = self.session = None
        if runtime == "onnxruntime":
            self.session = self._onnxruntime_net(cfg, weights, onnx)
            self.output_names = self.session.output_names
        else:
            self.net = self._opencv_net(cfg, weights, onnx)
            self.output_names = list(self.net.getUnconnectedOutLayersNames())

    @staticmethod
    def _opencv_net(cfg, weights, onnx):
        try:
            if onnx:
                net = cv2.dnn.readNetFromONNX(_existing(onnx, "ONNX"))
            else:
                net = cv2.dnn.readNetFromDarknet(_existing(cfg, "Darknet cfg"), _existing(weights, "Darknet weights"))
        except cv2.error as e:
            model = onnx or f"{cfg} + {weights}"
            raise VisionError(f"model does not load: {model}: {_cv2_reason(e)}") from None
        if not onnx:
            check_darknet_weights(net, cfg, weights)
        return net

    def _onnxruntime_net(self, cfg, weights, onnx):
        if onnx:
            return OnnxRuntimeNet(_existing(onnx, "ONNX"), onnx)
        return darknet_net(_existing(cfg, "Darknet cfg"), _existing(weights, "Darknet weights"), self.input_size)

    @classmethod
    def from_spec(cls, spec: dict) -> "Detector":
        known = {"cfg", "weights", "onnx", "names", "input_size", "conf", "nms", "classes", "runtime"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise VisionError(f"unknown detector spec keys {unknown}; known: {sorted(known)}")
        return cls(**spec)

    def _class_ids(self, classes) -> set:
        unknown = [c for c in classes if c not in self.names]
        if unknown:
            raise VisionError(f"unknown class names {unknown}; valid names: {', '.join(self.names)}")
        return {self.names.index(c) for c in classes}

    def forward(self, image: np.ndarray):
        """Raw net outputs for one BGR image (resized, not letterboxed, to the input size)."""
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (self.input_size, self.input_size), swapRB=True, crop=False)
        if self.net is None:
            return self.session.forward(blob)
        self.net.setInput(blob)
        try:
            return self.net.forward(self.output_names)
        except cv2.error as e:
            raise VisionError(
                f"model forward failed at input size {self.input_size}: {_cv2_reason(e)}; "
                "check that the input size matches the model (an ONNX export's fixed size)"
            ) from None

    def detect(self, image: np.ndarray) -> list:
        """Boxes in `image` pixels after the confidence threshold, class filter and class-wise NMS,
        clipped to the image, in canonical order (confidence desc, then class and corners)."""
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise VisionError(
                f"detect needs a BGR image of shape (h, w, 3), got {None if image is None else image.shape}"
            )
        h, w = image.shape[:2]
        outputs = self.forward(image)
        if self.kind == "darknet":
            cand = decode_darknet(outputs, self.conf, w, h, self.class_ids)
        else:
            cand = decode_onnx(
                outputs[0], self.conf, self.input_size, self.input_size, w, h, self.class_ids, len(self.names)
            )
        if not len(cand):
            return []
        xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in cand.corners]
        keep = cv2.dnn.NMSBoxesBatched(xywh, cand.scores.tolist(), cand.class_ids.tolist(), self.conf, self.nms)
        boxes = []
        for i in np.asarray(keep, dtype=np.int64).reshape(-1):
            x1, y1, x2, y2 = cand.corners[i]
            boxes.append(
                Box(
                    int(cand.class_ids[i]),
                    float(cand.scores[i]),
                    float(min(max(x1, 0.0), w)),
                    float(min(max(y1, 0.0), h)),
                    float(min(max(x2, 0.0), w)),
                    float(min(max(y2, 0.0), h)),
                )
            )
        return sort_boxes(boxes)


def spec_key(spec: dict) -> str:
    """The cache key of a detector spec: its JSON with sorted keys."""
    return json.dumps(spec, sort_keys=True)


@functools.lru_cache(maxsize=4)
def _cached_detector(key: str) -> Detector:
    return Detector.from_spec(json.loads(key))


def get_detector(spec: dict) -> Detector:
    """The process's detector for `spec`, loaded on first use and kept (a worker loads it once)."""
    return _cached_detector(spec_key(spec))
