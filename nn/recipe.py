"""Recipes: a flat dict of training settings that builds and trains a CNN.

This is the interface the hyperparameter sweeps use: a grid point is a recipe.

    recipe = validate_recipe({"lr": 0.02, "conv": [16, 32]})
    model, history = train_recipe(recipe, (x_train, y_train), (x_val, y_val))

Architecture, for each entry F of `conv`:
    ConvPool2D(F, kernel×kernel, padding, activation='relu')   (Conv2D, MaxPool2D(2), ReLU fused), or
    Conv2D(F, kernel×kernel, padding) → BatchNorm → MaxPool2D(2) → ReLU   with batchnorm,
then Flatten → Dense(dense) → [BatchNorm] → ReLU → [Dropout(dropout)] → Dense(n_classes).
MaxPool before ReLU computes exactly Conv → ReLU → MaxPool (max commutes with the
monotone ReLU) with the ReLU on a 4× smaller array. dense = 0 drops the hidden Dense layer.
Padding is 'valid' by default, so the default recipe is the reference CNN of the
benchmark: 28 → conv 26 → pool 13 → conv 11 → pool 5, Dense(16·5·5 = 400 → 128) → 10.
"""

import math
import numbers

import numpy as np

from .activations import ReLU
from .augment import augmenter
from .batchnorm import BatchNorm
from .callbacks import EarlyStopping
from .checkpoint import load_checkpoint
from .conv import Conv2D
from .convpool import ConvPool2D
from .dense import Dense
from .dropout import Dropout
from .errors import NNError
from .model import Sequential
from .optimizers import OPTIMIZERS
from .pooling import MaxPool2D
from .reshape import Flatten

DEFAULTS: dict = {
    "conv": [8, 16],  # filters of each conv block
    "kernel": 3,  # conv kernel size (square)
    "padding": "valid",  # 'valid' | 'same'
    "dense": 128,  # width of the hidden dense layer (0 = none)
    "dropout": 0.0,  # dropout rate before the last layer, in [0, 1)
    "batchnorm": False,  # BatchNorm after every conv and the hidden dense layer
    "optimizer": "sgd",  # 'sgd' | 'rmsprop' | 'adam'
    "lr": None,  # None = the optimizer's default: sgd 0.05, rmsprop/adam 0.001
    "momentum": 0.9,  # sgd only
    "nesterov": False,  # sgd only
    "decay": 0.0,  # lr_t = lr / (1 + decay · step)
    "batch_size": 64,
    "epochs": 10,
    "seed": 0,  # initial weights, shuffling, dropout, augmentation
    "augment": False,  # False, True (= 1.0) or a strength: 1.0 = ±2 px shifts, ±10° rotations
    "early_stopping": 0,  # patience in epochs on val_loss, 0 = off
}

DEFAULT_LR = {"sgd": 0.05, "rmsprop": 0.001, "adam": 0.001}

PRESETS: dict[str, dict] = {
    "reference": {},
    "wide": {"conv": [32, 64], "padding": "same", "dense": 256, "dropout": 0.3, "augment": 0.5, "epochs": 15},
    "mlp": {"conv": [], "dense": 256},
    "fashion": {"conv": [32, 64], "dense": 256, "dropout": 0.3, "optimizer": "adam", "epochs": 15},
}


class RecipeError(NNError):
    """A recipe that cannot be trained: one line naming the key and what it must be."""


def _fail(key, value, why):
    raise RecipeError(f"recipe key {key!r} = {value!r}: {why}")


def _int(key, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        _fail(key, value, "must be an integer")
    if value < low:
        _fail(key, value, f"must be >= {low}")
    return int(value)  # plain int (JSON-serialisable) also for NumPy integers


def _float(key, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        _fail(key, value, "must be a number")
    if not math.isfinite(value):
        _fail(key, value, "must be finite")
    return float(value)


def _bool(key, value):
    if not isinstance(value, (bool, np.bool_)):
        _fail(key, value, "must be true or false")
    return bool(value)


def validate_recipe(d: dict) -> dict:
    """A complete, checked copy of `d`: defaults filled in, lr resolved for the optimizer.

    Raises ValueError (one line naming the key) on an unknown key or a bad value.
    """
    if not isinstance(d, dict):
        raise RecipeError(f"a recipe is a dict, not {type(d).__name__}")
    unknown = sorted(set(d) - set(DEFAULTS))
    if unknown:
        raise RecipeError(f"unknown recipe key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(DEFAULTS)}")
    r = {**DEFAULTS, **d}
    conv = r["conv"]
    if not isinstance(conv, (list, tuple)):
        _fail("conv", conv, "must be a list of filter counts")
    r["conv"] = [_int("conv", f, 1) for f in conv]
    r["kernel"] = _int("kernel", r["kernel"], 1)
    if r["padding"] not in ("valid", "same"):
        _fail("padding", r["padding"], "must be 'valid' or 'same'")
    r["dense"] = _int("dense", r["dense"], 0)
    r["dropout"] = _float("dropout", r["dropout"])
    if not 0.0 <= r["dropout"] < 1.0:
        _fail("dropout", r["dropout"], "must be in [0, 1)")
    r["batchnorm"] = _bool("batchnorm", r["batchnorm"])
    if r["optimizer"] not in OPTIMIZERS:
        _fail("optimizer", r["optimizer"], f"must be one of {', '.join(OPTIMIZERS)}")
    if r["lr"] is None:
        r["lr"] = DEFAULT_LR[r["optimizer"]]
    r["lr"] = _float("lr", r["lr"])
    if r["lr"] <= 0:
        _fail("lr", r["lr"], "must be > 0")
    r["momentum"] = _float("momentum", r["momentum"])
    if not 0.0 <= r["momentum"] < 1.0:
        _fail("momentum", r["momentum"], "must be in [0, 1)")
    r["nesterov"] = _bool("nesterov", r["nesterov"])
    r["decay"] = _float("decay", r["decay"])
    if r["decay"] < 0:
        _fail("decay", r["decay"], "must be >= 0")
    r["batch_size"] = _int("batch_size", r["batch_size"], 1)
    r["epochs"] = _int("epochs", r["epochs"], 1)
    r["seed"] = _int("seed", r["seed"], 0)
    a = r["augment"]
    if isinstance(a, (bool, np.bool_)):
        a = bool(a)
    else:
        a = _float("augment", a)
        if a < 0:
            _fail("augment", a, "must be >= 0")
    r["augment"] = a
    r["early_stopping"] = _int("early_stopping", r["early_stopping"], 0)
    return r


def build_model(recipe: dict, input_shape=(1, 28, 28), n_classes: int = 10) -> Sequential:
    """The Sequential network the recipe describes, built (weights from the recipe's seed)."""
    r = validate_recipe(recipe)
    layers = []
    for filters in r["conv"]:
        if r["batchnorm"]:
            layers += [Conv2D(filters, r["kernel"], padding=r["padding"]), BatchNorm(), MaxPool2D(2)]
            layers.append(ReLU())
        else:
            layers.append(ConvPool2D(filters, r["kernel"], padding=r["padding"], activation="relu"))
    layers.append(Flatten())
    if r["dense"]:
        layers.append(Dense(r["dense"]))
        if r["batchnorm"]:
            layers.append(BatchNorm())
        layers.append(ReLU())
        if r["dropout"]:
            layers.append(Dropout(r["dropout"]))
    layers.append(Dense(n_classes))
    return Sequential(layers, input_shape=input_shape, seed=r["seed"])


def build_optimizer(recipe: dict):
    r = validate_recipe(recipe)
    name = r["optimizer"]
    if name == "sgd":
        return OPTIMIZERS[name](r["lr"], momentum=r["momentum"], nesterov=r["nesterov"], decay=r["decay"])
    return OPTIMIZERS[name](r["lr"], decay=r["decay"])


def train_recipe(recipe: dict, train, val, callbacks=(), resume_from=None):
    """Build, compile and fit the recipe's model on train = (x, y), validating on val = (x, y)
    (or None). Returns (model, history).

    resume_from: a checkpoint of this recipe (nn.checkpoint): training goes on after its epoch, and
    the history holds every epoch, the checkpoint's first."""
    r = validate_recipe(recipe)
    x, y = train
    model = build_model(r, input_shape=x.shape[1:], n_classes=_n_classes(y, val))
    model.compile(optimizer=build_optimizer(r))
    done, before = load_checkpoint(model, resume_from) if resume_from is not None else (0, [])
    callbacks = list(callbacks)
    if r["early_stopping"]:
        callbacks.append(EarlyStopping(patience=r["early_stopping"]))
    strength = 1.0 if r["augment"] is True else float(r["augment"])
    history = model.fit(
        x,
        y,
        epochs=r["epochs"],
        batch_size=r["batch_size"],
        validation_data=tuple(val) if val is not None else None,
        callbacks=callbacks,
        augment=augmenter(strength) if strength else None,
        initial_epoch=done,
    )
    history.epochs[:0] = before
    return model, history


def _n_classes(y, val) -> int:
    top = int(y.max())
    if val is not None and len(val[1]):
        top = max(top, int(val[1].max()))
    return max(top + 1, 10)
