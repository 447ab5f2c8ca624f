"""One seed makes a run reproducible: initial weights, shuffling, dropout and augmentation (with an lr
schedule and weight decay on)."""

import numpy as np

from nn.recipe import train_recipe


def data():
    rng = np.random.default_rng(0)
    return (rng.random((96, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 96))


def run(seed):
    recipe = {
        "epochs": 2,
        "batch_size": 16,
        "dropout": 0.3,
        "augment": True,
        "schedule": "onecycle",
        "weight_decay": 1e-3,
        "seed": seed,
        "conv": [4],
        "dense": 16,
    }
    x, y = data()
    return train_recipe(recipe, (x, y), (x[:32], y[:32]))


def test_same_seed_same_weights_and_metrics():
    (m1, h1), (m2, h2) = run(5), run(5)
    w1, w2 = m1.get_weights(), m2.get_weights()
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in h1.epochs] == [
        {k: v for k, v in e.items() if k != "seconds"} for e in h2.epochs
    ]


def test_different_seed_different_weights():
    m1, _ = run(5)
    m2, _ = run(6)
    assert not np.array_equal(m1.get_weights()["0.W"], m2.get_weights()["0.W"])
