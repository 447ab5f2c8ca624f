"""Darknet cfgs for the converter's tests, and .weights files of random floats that fit them.

`yolov3_cfg` writes the layout of the stock yolov3.cfg (Darknet-53, 75 convolutions, 23 shortcuts,
three heads; routes to layers 61 and 36) at any input size, so the full YOLOv3 is tested without its
248 MB of trained weights: `random_weights` writes a file of the same size (248,007,048 bytes) that
cv2.dnn and the converter both load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

YOLOV3_ANCHORS = "10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326"


def conv(filters: int, size: int, stride: int = 1, bn: bool = True, activation: str = "leaky") -> str:
    bn_line = "batch_normalize=1\n" if bn else ""
    options = f"filters={filters}\nsize={size}\nstride={stride}\npad=1\nactivation={activation}\n"
    return f"[convolutional]\n{bn_line}{options}"


def yolo(mask: str, anchors: str = YOLOV3_ANCHORS, classes: int = 80) -> str:
    num = len(anchors.split(",")) // 2
    return f"[yolo]\nmask={mask}\nanchors={anchors}\nclasses={classes}\nnum={num}\n"


def yolov3_cfg(size: int = 608, classes: int = 80) -> str:
    """The stock YOLOv3 layout; layer numbers of the routes are counted, then checked against the stock
    cfg's 61 and 36."""
    sections = [f"[net]\nbatch=1\nwidth={size}\nheight={size}\nchannels=3\n", conv(32, 3)]
    ends = {}  # stride -> index of the last layer at that stride

    def add(text):
        sections.append(text)
        return len(sections) - 2  # layer index (the [net] section is not a layer)

    for filters, blocks, stride in ((64, 1, 2), (128, 2, 4), (256, 8, 8), (512, 8, 16), (1024, 4, 32)):
        add(conv(filters, 3, 2))
        for _ in range(blocks):
            add(conv(filters // 2, 1))
            add(conv(filters, 3))
            ends[stride] = add("[shortcut]\nfrom=-3\nactivation=linear\n")
    assert (ends[16], ends[8]) == (61, 36)
    out = 3 * (5 + classes)
    for filters, mask, skip in ((512, "6,7,8", None), (256, "3,4,5", ends[16]), (128, "0,1,2", ends[8])):
        if skip is not None:
            add("[route]\nlayers=-4\n")
            add(conv(filters, 1))
            add("[upsample]\nstride=2\n")
            add(f"[route]\nlayers=-1, {skip}\n")
        for _ in range(3):
            add(conv(filters, 1))
            add(conv(filters * 2, 3))
        add(conv(out, 1, bn=False, activation="linear"))
        add(yolo(mask, classes=classes))
    return "\n".join(sections)


def conv_shapes(cfg_text: str, channels: int = 3) -> list[tuple[int, int, int, bool]]:
    """(filters, in channels, size, batch_normalize) of each convolution, in file order."""
    layers, out_channels, shapes = [], [], []
    for block in cfg_text.split("[")[1:]:
        kind, *lines = block.strip().splitlines()
        layers.append((kind.rstrip("]"), dict(line.replace(" ", "").split("=", 1) for line in lines if "=" in line)))
    c = channels
    for i, (kind, opts) in enumerate(layers[1:]):
        if kind == "convolutional":
            shapes.append((int(opts["filters"]), c, int(opts["size"]), opts.get("batch_normalize") == "1"))
            c = int(opts["filters"])
        elif kind == "route":
            refs = [int(v) for v in opts["layers"].split(",")]
            c = sum(out_channels[r if r >= 0 else i + r] for r in refs)
        out_channels.append(c)
    return shapes


def random_weights(cfg: Path, target: Path, seed: int = 0) -> Path:
    """A Darknet .weights file (version 0.2 header) of random parameters for `cfg`, scaled so that the
    activations of a deep net stay finite: He-scaled kernels, batch-norm variances near 1."""
    rng = np.random.default_rng(seed)
    with open(target, "wb") as f:
        np.array([0, 2, 0], np.int32).tofile(f)
        np.array([0], np.int64).tofile(f)
        for filters, c, k, bn in conv_shapes(Path(cfg).read_text()):
            fan_in = c * k * k
            rng.normal(0, 0.1, filters).astype(np.float32).tofile(f)  # bias
            if bn:
                rng.uniform(0.4, 0.8, filters).astype(np.float32).tofile(f)  # scale
                rng.normal(0, 0.1, filters).astype(np.float32).tofile(f)  # mean
                rng.uniform(0.5, 1.5, filters).astype(np.float32).tofile(f)  # variance
            std = np.sqrt(2.0 / fan_in) if bn else 2.0 / np.sqrt(fan_in)
            rng.normal(0, std, filters * fan_in).astype(np.float32).tofile(f)
    return target
