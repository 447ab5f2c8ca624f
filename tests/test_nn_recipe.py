"""The recipe contract the sweeps build against: validation, architecture, callbacks."""

import json
import math

import numpy as np
import pytest

from nn import BatchNorm, Callback, Conv2D, ConvPool2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from nn.recipe import DEFAULTS, build_model, build_optimizer, train_recipe, validate_recipe


def test_defaults_fill_in_and_lr_resolves_per_optimizer():
    r = validate_recipe({})
    assert set(r) == set(DEFAULTS)
    assert r["conv"] == [8, 16] and r["kernel"] == 3 and r["dense"] == 128 and r["batch_size"] == 64
    assert r["lr"] == 0.05
    assert validate_recipe({"optimizer": "adam"})["lr"] == 0.001
    assert validate_recipe({"optimizer": "rmsprop", "lr": 0.01})["lr"] == 0.01


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"lerning_rate": 0.1}, "unknown"),
        ({"lr": 0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "finite"),
        ({"lr": math.inf}, "finite"),
        ({"lr": "fast"}, "number"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 32.0}, "integer"),
        ({"epochs": True}, "integer"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"optimizer": "momentum"}, "optimizer"),
        ({"conv": 8}, "conv"),
        ({"conv": [8, 0]}, "conv"),
        ({"batchnorm": 1}, "batchnorm"),
        ({"padding": "full"}, "padding"),
        ({"augment": -1}, "augment"),
        ({"schedule": "linear"}, "schedule"),
        ({"schedule": None}, "schedule"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"weight_decay": math.nan}, "finite"),
    ],
)
def test_bad_recipes_raise_one_line_value_errors(bad, words):
    with pytest.raises(ValueError, match=words) as e:
        validate_recipe(bad)
    assert "\n" not in str(e.value)


def test_numpy_scalars_are_accepted_and_become_plain_python_values():
    import numpy as np

    r = validate_recipe(
        {"epochs": np.int64(3), "lr": np.float32(0.5), "batchnorm": np.bool_(True), "conv": [np.int32(4)]}
    )
    assert (r["epochs"], r["lr"], r["batchnorm"], r["conv"]) == (3, 0.5, True, [4])
    assert type(r["epochs"]) is int and type(r["lr"]) is float and type(r["batchnorm"]) is bool
    json.dumps(r)


def test_default_recipe_is_the_reference_cnn():
    model = build_model({})
    kinds = [type(l) for l in model.layers]
    assert kinds == [ConvPool2D, ConvPool2D, Flatten, Dense, ReLU, Dense]
    assert all(layer.activation == "relu" for layer in model.layers[:2])
    assert model.layers[0].params["W"].shape == (8, 1, 3, 3)
    assert model.layers[1].params["W"].shape == (16, 8, 3, 3)
    assert model.layers[3].params["W"].shape == (400, 128)
    assert model.layers[5].params["W"].shape == (128, 10)
    assert model.output_shape == (10,)


def test_batchnorm_dropout_and_same_padding():
    model = build_model({"conv": [4, 4, 4], "padding": "same", "batchnorm": True, "dropout": 0.5, "dense": 32})
    kinds = [type(l) for l in model.layers]
    assert kinds[:4] == [Conv2D, BatchNorm, MaxPool2D, ReLU]  # BatchNorm sits between conv and pool
    assert kinds.count(BatchNorm) == 4 and kinds.count(Dropout) == 1
    assert model.layers[-1].params["W"].shape == (32, 10)
    assert model.layers[kinds.index(Flatten) + 1].params["W"].shape == (3 * 3 * 4, 32)  # 28→14→7→3


def test_too_many_valid_convs_for_the_image_is_a_value_error():
    with pytest.raises(ValueError):
        build_model({"conv": [4, 4, 4, 4], "kernel": 5})


def test_build_optimizer_follows_the_recipe():
    opt = build_optimizer({"lr": 0.2, "momentum": 0.5, "nesterov": True, "decay": 0.1})
    assert (type(opt).__name__, opt.lr, opt.momentum, opt.nesterov, opt.decay) == ("SGD", 0.2, 0.5, True, 0.1)
    assert type(build_optimizer({"optimizer": "adam"})).__name__ == "Adam"


def test_build_optimizer_spans_the_schedule_over_every_step_and_sets_weight_decay():
    opt = build_optimizer({"schedule": "onecycle", "epochs": 3, "weight_decay": 5e-4, "lr": 0.1}, steps_per_epoch=10)
    assert (opt.schedule.name, opt.schedule.total, opt.weight_decay) == ("onecycle", 30, 5e-4)
    assert opt.current_lr() == pytest.approx(0.1 / 25)
    assert build_optimizer({}).schedule.name == "constant" and build_optimizer({}).weight_decay == 0.0


def small_data():
    rng = np.random.default_rng(0)
    return (rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64))


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.began, self.seen, self.stop_at = None, [], stop_at

    def on_train_begin(self, model):
        self.began = model

    def on_epoch_end(self, epoch, metrics):
        self.seen.append((epoch, metrics))
        return self.stop_at is not None and epoch >= self.stop_at


def test_callbacks_get_json_serialisable_metrics_every_epoch():
    x, y = small_data()
    rec = Recorder()
    model, history = train_recipe({"epochs": 3, "conv": [2], "dense": 8}, (x, y), (x[:16], y[:16]), callbacks=[rec])
    assert rec.began is model
    assert [e for e, _ in rec.seen] == [1, 2, 3]
    for epoch, m in rec.seen:
        assert set(m) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
        assert m["epoch"] == epoch and all(type(m[k]) is float for k in m if k != "epoch")
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["val_accuracy"] <= 1 and m["seconds"] > 0
    assert history.epochs == [m for _, m in rec.seen]
    json.dumps(history.epochs)


def test_the_schedule_ends_with_the_last_step_of_the_last_epoch():
    x, y = small_data()  # 64 samples in batches of 24: 3 steps per epoch
    model, _ = train_recipe({"epochs": 2, "batch_size": 24, "schedule": "step", "conv": [2], "dense": 8}, (x, y), None)
    opt = model.optimizer
    assert opt.t == opt.schedule.total == 6
    assert [opt.schedule(t) for t in range(6)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01])


def test_without_validation_data_val_metrics_are_none():
    x, y = small_data()
    _, history = train_recipe({"epochs": 1, "conv": [2], "dense": 8}, (x, y), None)
    assert history.epochs[0]["val_loss"] is None and history.epochs[0]["val_accuracy"] is None


def test_a_callback_returning_true_stops_training():
    x, y = small_data()
    rec = Recorder(stop_at=2)
    _, history = train_recipe({"epochs": 10, "conv": [2], "dense": 8}, (x, y), (x, y), callbacks=[rec])
    assert len(history.epochs) == 2


def test_early_stopping_stops_when_val_loss_stalls_and_restores_the_best_weights():
    x, y = small_data()
    xv, yv = small_data()[0][::-1].copy(), (small_data()[1] + 1) % 10  # unlearnable validation set
    model, history = train_recipe(
        {"epochs": 30, "early_stopping": 2, "conv": [2], "dense": 8, "lr": 0.1}, (x, y), (xv, yv)
    )
    losses = [e["val_loss"] for e in history.epochs]
    best = int(np.argmin(losses))
    assert len(losses) == best + 3  # two epochs without improvement after the best
    assert model.evaluate(xv, yv)[0] == pytest.approx(losses[best], rel=1e-6)


def test_every_preset_is_a_valid_recipe_that_builds():
    from nn.recipe import PRESETS

    for name, preset in PRESETS.items():
        recipe = validate_recipe(preset)
        assert build_model(recipe).output_shape == (10,), name
