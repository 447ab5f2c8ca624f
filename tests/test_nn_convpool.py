"""ConvPool2D computes exactly Conv2D followed by MaxPool2D(2) (and ReLU): values, all
gradients, ties."""

import numpy as np
import pytest

from nn import Conv2D, ConvPool2D, MaxPool2D, ReLU
from nn.gradcheck import check_layer

CASES = [
    ((1, 28, 28), 3, "valid"),
    ((8, 13, 13), 3, "valid"),
    ((2, 7, 9), 3, "same"),
    ((2, 9, 6), (2, 3), "valid"),
    ((3, 6, 7), (3, 2), "same"),
    ((2, 5, 5), 5, "same"),
    ((1, 4, 4), 1, "valid"),
]


@pytest.mark.parametrize("shape, kernel, padding", CASES)
def test_same_outputs_and_gradients_as_conv_then_maxpool(shape, kernel, padding):
    rng = np.random.default_rng(0)
    fused, conv, pool = ConvPool2D(3, kernel, padding), Conv2D(3, kernel, padding=padding), MaxPool2D(2)
    fused.build(shape, np.random.default_rng(1), np.float64)
    pool.build(conv.build(shape, np.random.default_rng(1), np.float64), rng, np.float64)
    x = rng.standard_normal((shape[0], 4) + shape[1:])
    x[:, 0] = 0  # an empty image: its conv output is the bias everywhere, so every window ties
    y = fused.forward(x)
    assert np.array_equal(y, pool.forward(conv.forward(x)))
    g = rng.standard_normal(y.shape)
    dx = fused.backward(g)
    assert np.allclose(dx, conv.backward(pool.backward(g)), rtol=0, atol=1e-12)
    for name in ("W", "b"):
        assert np.allclose(fused.grads[name], conv.grads[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, padding", [c for c in CASES if np.prod(c[0]) < 300])
def test_gradients_match_numerical(shape, kernel, padding):
    errors = check_layer(ConvPool2D(3, kernel, padding), shape, batch=2)
    assert set(errors) == {"x", "W", "b"} and all(e < 1e-5 for e in errors.values()), errors


def test_relu_activation_equals_conv_relu_maxpool():
    rng = np.random.default_rng(2)
    shape = (2, 10, 9)
    fused, conv, relu, pool = ConvPool2D(4, 3, activation="relu"), Conv2D(4, 3), ReLU(), MaxPool2D(2)
    fused.build(shape, np.random.default_rng(1), np.float64)
    pool.build(conv.build(shape, np.random.default_rng(1), np.float64), rng, np.float64)
    x = rng.standard_normal((2, 3, 10, 9))
    y = fused.forward(x)
    assert np.array_equal(y, pool.forward(relu.forward(conv.forward(x))))
    assert (y == 0).any() and (y > 0).any()
    g = rng.standard_normal(y.shape)
    dx = fused.backward(g)
    assert np.allclose(dx, conv.backward(relu.backward(pool.backward(g))), rtol=0, atol=1e-12)
    assert np.allclose(fused.grads["W"], conv.grads["W"], rtol=0, atol=1e-12)
    errors = check_layer(ConvPool2D(2, 3, activation="relu"), (1, 6, 6), batch=2)
    assert all(e < 1e-5 for e in errors.values()), errors


def test_too_small_an_input_is_a_value_error():
    with pytest.raises(ValueError):
        ConvPool2D(2, 3).build((1, 3, 3), np.random.default_rng(0), np.float32)
