"""A run stopped after epoch k and resumed from its checkpoint ends bit for bit where an unbroken run
ends: weights, optimizer state and the random generator (shuffling, augmentation, dropout) all
continue."""

import numpy as np
import pytest

from nn.callbacks import Callback
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.recipe import build_model, build_optimizer, train_recipe

RECIPE = {"epochs": 4, "batch_size": 16, "conv": [4], "dense": 16, "dropout": 0.3, "augment": True, "seed": 3}


def data():
    rng = np.random.default_rng(0)
    return rng.random((96, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 96)


class StopAfter(Callback):
    """Checkpoint after epoch `k`, then stop (as a killed worker would, having saved)."""

    def __init__(self, path, k):
        self.path, self.k, self.history = path, k, []

    def on_train_begin(self, model):
        self.model = model

    def on_epoch_end(self, epoch, metrics):
        self.history.append(dict(metrics))
        if epoch == self.k:
            save_checkpoint(self.model, self.path, epoch, self.history)
            return True
        return False


def without_seconds(epochs):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]


@pytest.mark.parametrize(
    "changes", [{}, {"optimizer": "adam", "batchnorm": True}, {"optimizer": "sgd", "nesterov": True, "decay": 0.01}]
)
def test_a_run_resumed_after_epoch_2_ends_with_the_unbroken_runs_weights_bit_for_bit(tmp_path, changes):
    recipe = {**RECIPE, **changes}
    x, y = data()
    whole, whole_history = train_recipe(recipe, (x, y), (x[:32], y[:32]))
    ckpt = tmp_path / "ckpt.npz"
    train_recipe(recipe, (x, y), (x[:32], y[:32]), callbacks=[StopAfter(ckpt, 2)])
    resumed, history = train_recipe(recipe, (x, y), (x[:32], y[:32]), resume_from=ckpt)
    a, b = whole.get_weights(), resumed.get_weights()
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    assert without_seconds(history.epochs) == without_seconds(whole_history.epochs)


def test_a_checkpoint_restores_the_optimizer_step_count_and_the_generator(tmp_path):
    x, y = data()
    ckpt = tmp_path / "ckpt.npz"
    stop = StopAfter(ckpt, 1)
    model, _ = train_recipe({**RECIPE, "optimizer": "adam"}, (x, y), None, callbacks=[stop])
    fresh = build_model({**RECIPE, "optimizer": "adam"})
    fresh.compile(optimizer=build_optimizer({**RECIPE, "optimizer": "adam"}))
    epoch, history = load_checkpoint(fresh, ckpt)
    assert (epoch, len(history), fresh.optimizer.t) == (1, 1, model.optimizer.t)
    assert fresh.rng.bit_generator.state == model.rng.bit_generator.state
    assert np.load(ckpt, allow_pickle=False)["epoch"] == 1  # arrays and strings only, no pickle


def test_a_checkpoint_of_another_optimizer_is_refused(tmp_path):
    x, y = data()
    ckpt = tmp_path / "ckpt.npz"
    train_recipe(RECIPE, (x, y), None, callbacks=[StopAfter(ckpt, 1)])
    with pytest.raises(ValueError, match="saved with SGD"):
        train_recipe({**RECIPE, "optimizer": "adam"}, (x, y), None, resume_from=ckpt)
