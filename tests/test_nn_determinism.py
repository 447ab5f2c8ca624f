"""One seed makes a run reproducible: initial weights, shuffling, dropout and augmentation."""

import numpy as np

from nn.recipe import train_recipe


def data():
    rng = np.random.default_rng(0)
    return (rng.random((96, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 96))


def run(seed):
    recipe = {"epochs": 2, "batch_size": 16, "dropout": 0.3, "augment": True, "seed": seed, "conv": [4], "dense": 16}
    x, y = data()
    return train_recipe(recipe, (x, y), (x[:32], y[:32]))


def test_same_seed_same_weights_and_metrics():
    (m1, h1), (m2, h2) = run(5), run(5)
    w1, w2 = m1.get_weights(), m2.get_weights()
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in h1.epochs] == \
           [{k: v for k, v in e.items() if k != "seconds"} for e in h2.epochs]


def test_different_seed_different_weights():
    m1, _ = run(5)
    m2, _ = run(6)
    assert not np.array_equal(m1.get_weights()["0.W"], m2.get_weights()["0.W"])


def test_threaded_steps_give_the_single_thread_update():
    from nn.recipe import build_model, build_optimizer
    x, y = data()
    models = []
    for threads in (1, 2, 3):
        model = build_model({"conv": [4, 8], "dense": 16})
        model.threads = threads
        model.compile(optimizer=build_optimizer({}))
        losses = [model.train_step(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]
        models.append((model, losses))
    (one, l1), (two, l2), (three, l3) = models
    assert [c for _, c in l1] == [c for _, c in l2] == [c for _, c in l3]
    assert np.allclose([v for v, _ in l1], [v for v, _ in l3], rtol=1e-5)
    for k, w in one.get_weights().items():
        assert np.allclose(w, two.get_weights()[k], rtol=1e-4, atol=1e-6)
        assert np.allclose(w, three.get_weights()[k], rtol=1e-4, atol=1e-6)
