"""Save and load a Sequential model: architecture as JSON, weights as .npz.

`save_model(model, "out/model")` writes out/model/model.json and out/model/weights.npz.
Weights load with allow_pickle=False: a weights file can hold arrays only, never code.

The same files exist as bytes without a directory (`model_files`, `model_from_files`), for a caller
that keeps them elsewhere (a sweep's trial on a host that shares no disk with its submitter).
"""

import io
import json
from pathlib import Path

import numpy as np

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm
from .conv import Conv2D
from .convpool import ConvPool2D
from .dense import Dense
from .dropout import Dropout
from .losses import LOSSES
from .model import Sequential
from .pooling import AvgPool2D, MaxPool2D
from .reshape import Flatten

LAYERS = {
    cls.__name__: cls
    for cls in (
        Dense,
        Conv2D,
        ConvPool2D,
        MaxPool2D,
        AvgPool2D,
        Flatten,
        Dropout,
        BatchNorm,
        ReLU,
        LeakyReLU,
        Sigmoid,
        Tanh,
        Softmax,
    )
}
FORMAT = "cvfleet-nn/1"


def model_to_dict(model: Sequential) -> dict:
    loss_name = next((k for k, v in LOSSES.items() if isinstance(model.loss, v)), None)
    return {
        "format": FORMAT,
        "input_shape": list(model.input_shape),
        "dtype": model.dtype.name,
        "seed": model.seed,
        "loss": loss_name,
        "layers": [{"class": type(l).__name__, "config": l.config()} for l in model.layers],
    }


def model_from_dict(spec: dict) -> Sequential:
    if spec.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} model description (format={spec.get('format')!r})")
    layers = []
    for entry in spec["layers"]:
        cls = LAYERS.get(entry["class"])
        if cls is None:
            raise ValueError(f"unknown layer class {entry['class']!r}")
        layers.append(cls(**entry["config"]))
    model = Sequential(
        layers, input_shape=spec["input_shape"], seed=spec.get("seed", 0), dtype=spec.get("dtype", "float32")
    )
    if spec.get("loss"):
        model.compile(loss=spec["loss"])
    return model


def _files(path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".json", ".npz"):
        p = p.parent
    return p / "model.json", p / "weights.npz"


def model_files(model: Sequential, training: dict | None = None) -> dict[str, bytes]:
    """What `save_model` writes, as {file name: bytes}: model.json, weights.npz and, given
    `training`, training.json."""
    if model.input_shape is None:
        raise ValueError("build the model (give input_shape or fit it) before saving")
    weights = io.BytesIO()
    np.savez(weights, **model.get_weights())
    files = {"model.json": json.dumps(model_to_dict(model), indent=1).encode(), "weights.npz": weights.getvalue()}
    if training is not None:
        files["training.json"] = json.dumps(training, indent=1).encode()
    return files


def model_from_files(files: dict[str, bytes]) -> Sequential:
    """The model whose `model_files` these are."""
    model = model_from_dict(json.loads(files["model.json"]))
    with np.load(io.BytesIO(files["weights.npz"]), allow_pickle=False) as f:
        model.set_weights({k: f[k] for k in f.files})
    return model


def save_model(model: Sequential, path, training: dict | None = None) -> Path:
    """Write the model into directory `path` (created if needed); return the directory.

    training: how the model was trained (data, recipe, per-epoch history...), kept beside it as
    training.json so a saved model says where it came from."""
    files = model_files(model, training)
    arch, _ = _files(path)
    arch.parent.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (arch.parent / name).write_bytes(data)
    return arch.parent


def load_model(path) -> Sequential:
    """Read what `save_model` wrote; `path` is the directory or either file in it."""
    arch, weights = _files(path)
    if not arch.is_file() or not weights.is_file():
        raise FileNotFoundError(f"no saved model at {path} (expected {arch.name} and {weights.name})")
    return model_from_files({"model.json": arch.read_bytes(), "weights.npz": weights.read_bytes()})
