"""Checkpoints: everything a training run needs to go on after epoch k exactly as if it never stopped.

    save_checkpoint(model, "ckpt.npz", epoch=5, history=history.epochs)
    model = build the same architecture; model.compile(optimizer=the same kind)
    epoch, history = load_checkpoint(model, "ckpt.npz")
    model.fit(x, y, epochs=8, initial_epoch=epoch, ...)    # epochs 6..8, bit for bit as an unbroken run

One .npz, loaded with allow_pickle=False (arrays and strings only, never code): the weights and
buffers ('w.<layer>.<name>'), the optimizer's step count and per-parameter arrays ('opt.*'), the
state of the model's random generator, which drives shuffling, augmentation and dropout (JSON), the
epoch and the per-epoch metrics so far (JSON). Written to a temporary name and renamed, so a reader
finds the previous checkpoint or the new one, never half of one.

The same .npz travels as bytes where there is no file to share (`checkpoint_bytes`, and
`load_checkpoint` takes bytes as well as a path): a caller stores them wherever it likes.

The architecture is not in it: the caller builds the model (from its recipe) and the checkpoint
fills it. A callback's own state (EarlyStopping's patience count) is not kept either.
"""

import io
import json
import os
from pathlib import Path

import numpy as np

FORMAT = "cvfleet-nn-checkpoint/1"


def checkpoint_bytes(model, epoch: int, history: list[dict]) -> bytes:
    """The .npz of the state of `model` (compiled, trained through `epoch`), as bytes."""
    arrays = {f"w.{k}": v for k, v in model.get_weights().items()}
    arrays.update({f"opt.{k}": v for k, v in model.optimizer.get_state().items()})
    arrays["format"] = np.array(FORMAT)
    arrays["optimizer"] = np.array(type(model.optimizer).__name__)
    arrays["rng"] = np.array(json.dumps(model.rng.bit_generator.state))
    arrays["epoch"] = np.array(int(epoch))
    arrays["history"] = np.array(json.dumps(history))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_checkpoint(model, path, epoch: int, history: list[dict]) -> Path:
    """Write the state of `model` (compiled, trained through `epoch`) to the .npz file `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    tmp.write_bytes(checkpoint_bytes(model, epoch, history))
    tmp.replace(path)
    return path


def checkpoint_epoch(source) -> tuple[int, list[dict]]:
    """(epoch, history) of a checkpoint (a path or its bytes) without a model to fill."""
    with np.load(_readable(source), allow_pickle=False) as f:
        return int(f["epoch"]), json.loads(str(f["history"]))


def load_checkpoint(model, source) -> tuple[int, list[dict]]:
    """Fill `model` (built and compiled like the saved one) from `source`, a path or the bytes of
    one; returns (epoch, history)."""
    name = "checkpoint" if isinstance(source, bytes) else source
    with np.load(_readable(source), allow_pickle=False) as f:
        if "format" not in f.files or str(f["format"]) != FORMAT:
            raise ValueError(f"{name}: not a {FORMAT} file")
        saved, compiled = str(f["optimizer"]), type(model.optimizer).__name__
        if saved != compiled:
            raise ValueError(f"{name}: saved with {saved}, the model is compiled with {compiled}")
        model.set_weights({k[2:]: f[k] for k in f.files if k.startswith("w.")})
        model.optimizer.set_state({k[4:]: f[k] for k in f.files if k.startswith("opt.")})
        # in place: layers that draw random numbers (Dropout) hold this very generator
        model.rng.bit_generator.state = json.loads(str(f["rng"]))
        return int(f["epoch"]), json.loads(str(f["history"]))


def _readable(source):
    return io.BytesIO(source) if isinstance(source, bytes) else source
