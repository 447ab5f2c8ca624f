"""Darknet (.cfg + .weights) to ONNX, with the YOLO heads decoded as OpenCV's Darknet importer does.

No converter on PyPI works without torch, so this one is ours: it reads the cfg and the weights
file and writes the graph with `onnx.helper`. Layers: convolutional (batch norm folded into the
weights and bias, eps 1e-6 as in Darknet and OpenCV; groups), activations (leaky 0.1, linear,
logistic, swish, mish), maxpool (Darknet's padding: `size - 1` by default, split floor/ceil so a
size-2 stride-1 pool pads right and bottom), upsample (nearest), route (one layer or a concat),
shortcut (a sum, optionally scaled by alpha), dropout, and [yolo].

Each [yolo] head becomes one output of (h * w * anchors, 5 + classes) rows in OpenCV's order
(row (y * w + x) * anchors + a) holding what `cv2.dnn`'s Region layer computes:
cx = (x + (sigmoid(tx) - 0.5) * scale_x_y + 0.5) / w, cy likewise, bw = exp(tw) * anchor_w /
input width, bh likewise, objectness = sigmoid(to), and class scores sigmoid(tc) * objectness,
zeroed where not above the head's `thresh` (0.2 unless the cfg says otherwise). So
`yolo_outputs.decode_darknet` reads both runtimes' outputs alike. OpenCV 4.14 runs no NMS inside
the head (overlapping same-class rows come out of it) unless the cfg sets `nms_threshold`; then it
zeroes the class scores of suppressed rows, class by class, and so does this graph.

The graph has a fixed input (1, 3, size, size) named `data`, the blob `cv2.dnn.blobFromImage`
makes; the grid offsets and anchors are constants of that size. `onnx` is imported only when a
model is converted: the rest of vision/ does not need it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import VisionError
from .files import file_sha256

OPSET = 13
BN_EPS = 1e-6  # Darknet's normalize_cpu and OpenCV's importer
LEAKY_SLOPE = 0.1


def parse_cfg(text: str) -> tuple[dict, list[dict]]:
    """([net] options, [{'type': section, option: value, ...} per layer]) of a Darknet cfg.

    As OpenCV reads it: blank characters dropped, '#' and ';' lines are comments."""
    net, layers, current = {}, [], None
    for raw in text.splitlines():
        line = "".join(ch for ch in raw if " " < ch <= "z")
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise VisionError(f"darknet cfg: bad section header {raw.strip()!r}")
            kind = line[1:-1]
            current = net if kind == "net" else {"type": kind}
            if kind != "net":
                layers.append(current)
        elif "=" in line:
            if current is None:
                raise VisionError(f"darknet cfg: option {raw.strip()!r} before any section")
            key, value = line.split("=", 1)
            if key and value:
                current[key] = value
        else:
            raise VisionError(f"darknet cfg: cannot read line {raw.strip()!r}")
    if not layers:
        raise VisionError("darknet cfg has no layers")
    return net, layers


def _int(layer: dict, key: str, default: int) -> int:
    try:
        return int(layer.get(key, default))
    except ValueError:
        raise VisionError(f"darknet cfg: [{layer.get('type', 'net')}] {key}={layer[key]!r} is not an integer") from None


def _float(layer: dict, key: str, default: float) -> float:
    try:
        return float(layer.get(key, default))
    except ValueError:
        raise VisionError(f"darknet cfg: [{layer['type']}] {key}={layer[key]!r} is not a number") from None


def _floats(layer: dict, key: str) -> list[float]:
    try:
        return [float(v) for v in layer.get(key, "").split(",") if v]
    except ValueError:
        raise VisionError(f"darknet cfg: [{layer['type']}] {key}={layer[key]!r} is not a list of numbers") from None


class _Weights:
    """The float32 parameters of a .weights file, handed out in file order."""

    def __init__(self, path):
        data = Path(path).read_bytes()
        if len(data) < 12:
            raise VisionError(f"{path} is not a Darknet weights file ({len(data)} bytes)")
        major, minor, _revision = (int(v) for v in np.frombuffer(data[:12], dtype=np.int32))
        header = 20 if major * 10 + minor >= 2 else 16  # 'seen' became an int64 in 0.2
        if major > 1000 or minor > 1000:
            raise VisionError(f"{path}: transposed Darknet weights (version {major}.{minor}) are not supported")
        if len(data) < header or (len(data) - header) % 4:
            raise VisionError(f"{path} is not a Darknet weights file (size {len(data)} is not header + floats)")
        self.path = path
        self.values = np.frombuffer(data, dtype=np.float32, offset=header)
        self.used = 0

    def take(self, n: int) -> np.ndarray:
        if self.used + n > len(self.values):
            raise VisionError(
                f"{self.path} holds {len(self.values)} floats but the cfg needs more: "
                "the weights are truncated or belong to another cfg"
            )
        out = self.values[self.used : self.used + n]
        self.used += n
        return out

    def check_all_used(self) -> None:
        if self.used != len(self.values):
            raise VisionError(
                f"{self.path} holds {len(self.values)} floats but the cfg needs {self.used}: "
                "the weights belong to another cfg"
            )


class _Graph:
    """Nodes and initializers in the making, with unique tensor names."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint: str = "const") -> str:
        name = self.name(hint)
        self.inits.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list, hint: str | None = None, **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out


@dataclass
class _Net:
    """What the layer builders read and add to: the graph, the weights still to hand out, the net's
    input size, and every layer built so far (its output tensor and (channels, height, width))."""

    g: _Graph
    weights: _Weights
    size: int
    outs: list = field(default_factory=list)
    shapes: list = field(default_factory=list)
    heads: list = field(default_factory=list)  # (output name, tensor, rows shape) of each [yolo]


def _activation(g: _Graph, x: str, kind: str, where: str) -> str:
    if kind == "linear":
        return x
    if kind == "leaky":
        return g.op("LeakyRelu", [x], alpha=LEAKY_SLOPE)
    if kind == "logistic":
        return g.op("Sigmoid", [x])
    if kind == "swish":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if kind == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])
    raise VisionError(f"darknet cfg: {where}: activation {kind!r} is not supported")


def _conv(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[convolutional]: batch norm folded into the kernel and bias."""
    g, weights, (c, h, w) = net.g, net.weights, shape
    k = _int(layer, "size", -1)
    filters = _int(layer, "filters", -1)
    stride = _int(layer, "stride", 1)
    groups = _int(layer, "groups", 1)
    pad = k // 2 if _int(layer, "pad", 0) else _int(layer, "padding", 0)
    if k <= 0 or filters <= 0 or c % groups:
        raise VisionError(f"darknet cfg: {where}: needs size, filters and channels divisible by groups")
    if _int(layer, "flipped", 0) or _int(layer, "dilation", 1) != 1:
        raise VisionError(f"darknet cfg: {where}: flipped or dilated convolutions are not supported")
    bias = weights.take(filters)
    kernel_shape = (filters, c // groups, k, k)
    if _int(layer, "batch_normalize", 0):
        scale, mean, var = weights.take(filters), weights.take(filters), weights.take(filters)
        kernel = weights.take(int(np.prod(kernel_shape))).reshape(kernel_shape)
        factor = scale / np.sqrt(var + np.float32(BN_EPS))
        kernel = kernel * factor[:, None, None, None]
        bias = bias - mean * factor
    else:
        kernel = weights.take(int(np.prod(kernel_shape))).reshape(kernel_shape)
    y = g.op(
        "Conv",
        [x, g.const(kernel.astype(np.float32), "W"), g.const(bias.astype(np.float32), "B")],
        "conv",
        kernel_shape=[k, k],
        strides=[stride, stride],
        pads=[pad, pad, pad, pad],
        group=groups,
    )
    return y, (filters, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)


def _maxpool(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[maxpool] with Darknet's padding: `size - 1` by default, split floor/ceil."""
    c, h, w = shape
    k = _int(layer, "size", 2)
    stride = _int(layer, "stride", 2)
    padding = _int(layer, "padding", k - 1)
    begin, end = padding // 2, padding - padding // 2
    y = net.g.op("MaxPool", [x], "pool", kernel_shape=[k, k], strides=[stride, stride], pads=[begin, begin, end, end])
    return y, (c, (h + padding - k) // stride + 1, (w + padding - k) // stride + 1)


def _upsample(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[upsample]: nearest neighbour, by `stride` in both directions."""
    c, h, w = shape
    s = _int(layer, "stride", 2)
    scales = net.g.const(np.array([1, 1, s, s], np.float32), "scales")
    y = net.g.op(
        "Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
    )
    return y, (c, h * s, w * s)


def _route(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[route]: one earlier layer's output, or several of one size concatenated along channels."""
    if "groups" in layer or "group_id" in layer:
        raise VisionError(f"darknet cfg: {where}: route groups (YOLOv4-tiny) are not supported")
    refs = [int(v) for v in _floats(layer, "layers")]
    refs = [r if r >= 0 else i + r for r in refs]
    if not refs or any(not 0 <= r < i for r in refs) or len({net.shapes[r][1:] for r in refs}) != 1:
        raise VisionError(f"darknet cfg: {where}: layers must name earlier layers of one size")
    y = net.outs[refs[0]] if len(refs) == 1 else net.g.op("Concat", [net.outs[r] for r in refs], "route", axis=1)
    return y, (sum(net.shapes[r][0] for r in refs), *net.shapes[refs[0]][1:])


def _shortcut(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[shortcut]: the sum with an earlier layer of the same shape, this one scaled by `alpha`."""
    src = _int(layer, "from", i)
    src = src if src >= 0 else i + src
    if not 0 <= src < i or net.shapes[src] != shape or _float(layer, "beta", 0) != 0:
        raise VisionError(f"darknet cfg: {where}: from must name an earlier layer of the same shape")
    alpha = _float(layer, "alpha", 1)
    if alpha != 1:
        x = net.g.op("Mul", [x, net.g.const(np.float32(alpha))])
    return net.g.op("Add", [x, net.outs[src]], "shortcut"), shape


def _passthrough(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[dropout] and [cost]: nothing at inference."""
    return x, shape


def _yolo_layer(net: _Net, i: int, layer: dict, x: str, shape: tuple, where: str) -> tuple[str, tuple]:
    """[yolo]: a head, one output of the graph."""
    y, rows = _yolo(net.g, x, *shape, layer, net.size, where)
    net.heads.append((f"yolo_{i}", y, rows))
    return y, shape


def _yolo(g: _Graph, x: str, c: int, h: int, w: int, layer: dict, size: int, where: str) -> tuple[str, list]:
    """The head's decoded rows and their shape."""
    classes = _int(layer, "classes", -1)
    anchors = _floats(layer, "anchors")
    mask = [int(v) for v in _floats(layer, "mask")] or list(range(len(anchors) // 2))
    if _int(layer, "new_coords", 0):
        raise VisionError(f"darknet cfg: {where}: new_coords=1 (scaled YOLOv4) is not supported")
    if classes <= 0 or not anchors or any(m * 2 + 1 >= len(anchors) for m in mask):
        raise VisionError(f"darknet cfg: {where}: needs classes, anchors and a mask within them")
    a, cell = len(mask), 5 + classes
    if c != a * cell:
        raise VisionError(f"darknet cfg: {where}: {c} channels in, but {a} anchors x (5 + {classes}) needed")
    thresh = np.float32(_float(layer, "thresh", 0.2))
    sxy = np.float32(_float(layer, "scale_x_y", 1.0))

    rows = g.op("Reshape", [x, g.const(np.array([1, a, cell, h, w], np.int64), "shape")])
    rows = g.op("Transpose", [rows], perm=[0, 3, 4, 1, 2])  # (1, h, w, a, cell): OpenCV's row order
    rows = g.op("Reshape", [rows, g.const(np.array([h * w * a, cell], np.int64), "shape")])
    parts = [g.name("xy"), g.name("wh"), g.name("obj"), g.name("cls")]
    g.nodes.append(
        g.helper.make_node("Split", [rows, g.const(np.array([2, 2, 1, classes], np.int64), "split")], parts, axis=1)
    )
    xy, wh, obj, cls = parts

    index = np.arange(h * w * a)
    cell_xy = np.stack([(index // a) % w, (index // a) // w], axis=1).astype(np.float32)
    anchor_wh = np.array([anchors[m * 2 : m * 2 + 2] for m in mask], np.float32)[index % a]
    half = np.float32(0.5)
    xy = g.op("Add", [g.op("Mul", [g.op("Sub", [g.op("Sigmoid", [xy]), g.const(half)]), g.const(sxy)]), g.const(half)])
    xy = g.op("Div", [g.op("Add", [xy, g.const(cell_xy, "grid")]), g.const(np.array([w, h], np.float32))])
    wh = g.op("Mul", [g.op("Exp", [wh]), g.const(anchor_wh, "anchors")])
    wh = g.op("Div", [wh, g.const(np.array([size, size], np.float32))])
    obj = g.op("Sigmoid", [obj])
    prob = g.op("Mul", [g.op("Sigmoid", [cls]), obj])
    zero = g.const(np.float32(0))
    prob = g.op("Where", [g.op("Greater", [prob, g.const(thresh)]), prob, zero])
    nms = _float(layer, "nms_threshold", 0.0)
    if nms > 0:
        prob = _head_nms(g, xy, wh, prob, h * w * a, classes, thresh, nms)
    return g.op("Concat", [xy, wh, obj, prob], "yolo", axis=1), [h * w * a, cell]


def _head_nms(g: _Graph, xy: str, wh: str, prob: str, n: int, classes: int, thresh, nms: float) -> str:
    """Class-wise NMS inside the head, as `cv2.dnn` runs it when the cfg sets `nms_threshold` (OpenCV
    4.14's default is none): class scores of suppressed rows become 0."""
    boxes = g.op("Unsqueeze", [g.op("Concat", [xy, wh], axis=1), g.const(np.array([0], np.int64))])
    scores = g.op("Unsqueeze", [g.op("Transpose", [prob], perm=[1, 0]), g.const(np.array([0], np.int64))])
    kept = g.op(
        "NonMaxSuppression",
        [
            boxes,
            scores,
            g.const(np.array([n], np.int64)),
            g.const(np.array([nms], np.float32)),
            g.const(np.array([thresh], np.float32)),
        ],
        center_point_box=1,
    )  # (k, 3): batch 0, class, row
    where = g.op("Slice", [kept, *(g.const(np.array([v], np.int64)) for v in (1, 3, 1))])  # (k, 2): class, row
    batch = g.op("Slice", [kept, *(g.const(np.array([v], np.int64)) for v in (0, 1, 1))])
    ones = g.op(
        "Cast", [g.op("Add", [g.op("Reshape", [batch, g.const(np.array([-1], np.int64))]), g.const(np.int64(1))])], to=1
    )
    keep = g.op("ScatterND", [g.const(np.zeros((classes, n), np.float32)), where, ones])
    return g.op("Mul", [prob, g.op("Transpose", [keep], perm=[1, 0])])


LAYER_BUILDERS = {  # cfg section type -> builder(net, layer index, section, input tensor, its shape, where)
    "convolutional": _conv,
    "maxpool": _maxpool,
    "upsample": _upsample,
    "route": _route,
    "shortcut": _shortcut,
    "dropout": _passthrough,
    "cost": _passthrough,
    "yolo": _yolo_layer,
}


def darknet_to_onnx(cfg, weights, input_size: int = 416) -> bytes:
    """The serialized ONNX model of a Darknet cfg + weights at a square input of `input_size`."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise VisionError("the Darknet-to-ONNX converter needs the onnx package: pip install onnx") from None
    if input_size <= 0 or input_size % 32:
        raise VisionError(f"model input size must be a positive multiple of 32, got {input_size!r}")
    options, layers = parse_cfg(Path(cfg).read_text(errors="replace"))
    net = _Net(_Graph(helper, numpy_helper), _Weights(weights), input_size)
    channels = _int(options, "channels", 3)
    x, shape = "data", (channels, input_size, input_size)
    for i, layer in enumerate(layers):
        kind, where = layer["type"], f"layer {i} [{layer['type']}]"
        build = LAYER_BUILDERS.get(kind)
        if build is None:
            raise VisionError(f"darknet cfg: {where}: layer type {kind!r} is not supported by the ONNX converter")
        x, shape = build(net, i, layer, x, shape, where)
        if kind != "yolo":
            x = _activation(net.g, x, layer.get("activation", "linear"), where)
        net.outs.append(x)
        net.shapes.append(shape)
    net.weights.check_all_used()
    if not net.heads:
        raise VisionError("darknet cfg has no [yolo] layer: nothing to detect with")
    for name, tensor, _ in net.heads:
        net.g.nodes.append(helper.make_node("Identity", [tensor], [name]))
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, channels, input_size, input_size])
    graph = helper.make_graph(
        net.g.nodes,
        Path(cfg).stem,
        [data],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, rows) for name, _, rows in net.heads],
        net.g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cvfleet")
    model.ir_version = min(model.ir_version, 8)  # readable by older onnxruntime too
    onnx.checker.check_model(model)
    return model.SerializeToString()


def cache_key(cfg, weights, input_size: int) -> str:
    """Hex sha256 of what the converted model depends on: the weights' and the cfg's sha256, the input
    size, and this converter's own source (a changed converter never reads a stale file)."""
    parts = [file_sha256(weights), file_sha256(cfg), str(input_size), file_sha256(__file__)]
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


def cached_onnx(cfg, weights, input_size: int = 416) -> Path | bytes:
    """The converted model's path beside the weights (`<weights stem>.<key[:16]>.onnx`), converting
    only when no such file exists yet; written to a temp name then renamed, so a process that reads
    it never sees half a file. Where the weights' directory is read-only, the model's bytes."""
    weights = Path(weights)
    target = weights.with_name(f"{weights.stem}.{cache_key(cfg, weights, input_size)[:16]}.onnx")
    if target.is_file():
        return target
    data = darknet_to_onnx(cfg, weights, input_size)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError:
        return data
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other users of a shared cache
        os.replace(tmp, target)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return data
    return target
