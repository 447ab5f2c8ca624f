"""The onnxruntime runtime (the default): a YOLO model on onnxruntime instead of `cv2.dnn`.

A Darknet model is converted once (`darknet_onnx.cached_onnx`, cached beside the weights) into a
graph whose outputs are the rows `cv2.dnn` gives, so the detector decodes both runtimes alike; a
YOLOv5/v8 export runs as it is. One intra-op thread: fleet workers are one process per core, as
for OpenCV (docs/design.md). `onnx` and `onnxruntime` are imported here only when this runtime is
used, so `vision/` with `--runtime opencv` still runs where they are not installed.
"""

from __future__ import annotations

from .errors import VisionError

MISSING = (
    "--runtime onnxruntime needs the onnx and onnxruntime packages: "
    "pip install onnx onnxruntime, or give --runtime opencv"
)


def require_onnxruntime():
    """The onnxruntime module; VisionError in one line if it or onnx is not installed."""
    try:
        import onnx  # noqa: F401  (the converter needs it; fail here, before any work, if it is missing)
        import onnxruntime
    except ImportError:
        raise VisionError(MISSING) from None
    return onnxruntime


def _reason(error: Exception) -> str:
    lines = [s.strip() for s in str(error).splitlines() if s.strip()]
    return lines[-1] if lines else error.__class__.__name__


class OnnxRuntimeNet:
    """An onnxruntime session with `forward(blob) -> [output arrays]`, like a `cv2.dnn` net's forward.

    model: a path or the serialized model's bytes; `what` names it in errors."""

    def __init__(self, model, what: str, threads: int = 1):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        try:
            source = model if isinstance(model, bytes) else str(model)
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types, not exported stably
            raise VisionError(f"model does not load: {what}: {_reason(e)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, blob):
        try:
            return self.session.run(self.output_names, {self.input_name: blob})
        except Exception as e:
            raise VisionError(
                f"model forward failed at input size {blob.shape[-1]}: {_reason(e)}; "
                "check that the input size matches the model (an ONNX export's fixed size)"
            ) from None


def darknet_net(cfg, weights, input_size: int) -> OnnxRuntimeNet:
    """The Darknet model on onnxruntime, converted on first use and then read from the cache."""
    require_onnxruntime()
    from .darknet_onnx import cached_onnx

    model = f"{cfg} + {weights}"
    try:
        converted = cached_onnx(cfg, weights, input_size)
    except VisionError as e:
        raise VisionError(f"model does not load: {model}: {e}") from None
    return OnnxRuntimeNet(converted, f"{model} (converted to ONNX)")
