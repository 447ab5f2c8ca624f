"""Weight decay: the L2 penalty ½ · wd · ‖p‖² in every optimizer's update, gradients untouched."""

import numpy as np
import pytest

from nn import SGD, Adam, RMSProp
from nn.recipe import train_recipe


def pair():
    return np.array([1.0, -2.0]), np.array([0.5, -1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda wd: SGD(0.1, momentum=0.9, weight_decay=wd),
        lambda wd: RMSProp(weight_decay=wd),
        lambda wd: Adam(weight_decay=wd),
    ],
)
def test_decay_is_the_update_for_gradient_plus_wd_times_param(make):
    p, g = pair()
    make(0.3).step([(p, g)])
    q, _ = pair()
    make(0.0).step([(q, g + 0.3 * q)])
    assert np.allclose(p, q, rtol=1e-12)
    assert np.array_equal(g, pair()[1])  # the gradient array is left as the layer wrote it


def test_decay_is_the_gradient_of_half_wd_times_the_squared_norm():
    p = np.array([0.7, -1.3, 2.0])
    wd, eps = 0.05, 1e-6
    penalty = lambda q: 0.5 * wd * float(q @ q)  # noqa: E731
    numeric = np.array([(penalty(p + eps * e) - penalty(p - eps * e)) / (2 * eps) for e in np.eye(3)])
    moved = p.copy()
    SGD(1.0, weight_decay=wd).step([(moved, np.zeros(3))])  # a zero data gradient: the step is -lr · penalty'
    assert np.allclose(p - moved, numeric, rtol=1e-6)


def test_without_data_gradient_weights_shrink_geometrically():
    p = np.ones(2)
    opt = SGD(0.1, weight_decay=0.5)
    for _ in range(3):
        opt.step([(p, np.zeros(2))])
    assert np.allclose(p, (1 - 0.05) ** 3)


def test_negative_weight_decay_is_rejected():
    with pytest.raises(ValueError, match="weight decay"):
        SGD(0.1, weight_decay=-1e-4)


def test_training_with_weight_decay_ends_with_smaller_weights():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64)
    recipe = {"epochs": 3, "conv": [4], "dense": 16, "lr": 0.05}
    plain, _ = train_recipe(recipe, (x, y), None)
    decayed, _ = train_recipe({**recipe, "weight_decay": 0.05}, (x, y), None)
    norm = lambda m: sum(float((w**2).sum()) for k, w in m.get_weights().items() if k.endswith("W"))  # noqa: E731
    assert norm(decayed) < norm(plain)
