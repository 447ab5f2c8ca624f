"""Every layer's backward() is the derivative of its forward(): numerical gradients, float64."""

import numpy as np
import pytest

from nn import (
    MSE,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
)
from nn.gradcheck import check_layer, numerical_gradient, relative_error

TOL = 1e-5

CASES = [
    ("dense", lambda: Dense(4), (6,)),
    ("conv 3x3 stride 1 valid", lambda: Conv2D(3, 3), (2, 6, 5)),
    ("conv 3x3 stride 1 same", lambda: Conv2D(3, 3, padding="same"), (2, 5, 6)),
    ("conv 3x3 stride 2 valid", lambda: Conv2D(2, 3, stride=2), (2, 7, 8)),
    ("conv 3x3 stride 2 same", lambda: Conv2D(2, 3, stride=2, padding="same"), (2, 7, 8)),
    ("conv 2x3 stride 1 same (non-square, even)", lambda: Conv2D(2, (2, 3), padding="same"), (3, 5, 6)),
    ("conv 3x2 stride 2 valid (non-square)", lambda: Conv2D(2, (3, 2), stride=2), (1, 7, 6)),
    ("conv 1x1", lambda: Conv2D(3, 1), (4, 3, 3)),
    ("conv 5x5 stride 2 same on odd size", lambda: Conv2D(2, 5, stride=2, padding="same"), (1, 7, 7)),
    ("maxpool 2", lambda: MaxPool2D(2), (2, 6, 4)),
    ("maxpool 2 on odd size (last row/col dropped)", lambda: MaxPool2D(2), (2, 5, 7)),
    ("maxpool 3 stride 2 (overlapping windows)", lambda: MaxPool2D(3, 2), (2, 7, 7)),
    ("avgpool 2", lambda: AvgPool2D(2), (2, 6, 4)),
    ("avgpool 3 stride 2 (overlapping windows)", lambda: AvgPool2D(3, 2), (2, 7, 6)),
    ("flatten", lambda: Flatten(), (2, 3, 2)),
    ("batchnorm after dense", lambda: BatchNorm(), (5,)),
    ("batchnorm after conv", lambda: BatchNorm(), (2, 3, 3)),
    ("relu", lambda: ReLU(), (3, 4)),
    ("leaky relu", lambda: LeakyReLU(0.1), (3, 4)),
    ("sigmoid", lambda: Sigmoid(), (3, 4)),
    ("tanh", lambda: Tanh(), (3, 4)),
    ("softmax", lambda: Softmax(), (5,)),
]


@pytest.mark.parametrize("make, shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_gradients_match_numerical(make, shape):
    errors = check_layer(make(), shape, batch=3)
    assert "x" in errors
    assert all(e < TOL for e in errors.values()), errors


def test_batchnorm_inference_mode_gradient():
    errors = check_layer(BatchNorm(), (4,), batch=3, training=False)
    assert all(e < TOL for e in errors.values()), errors


def test_dropout_gradient_with_its_mask_held_fixed():
    layer = Dropout(0.4)
    errors = {}
    rng = np.random.default_rng(1)
    layer.build((10,), rng, np.float64)
    layer.training = True
    x = rng.standard_normal((4, 10))
    g = rng.standard_normal((4, 10))

    def loss():
        layer.rng = np.random.default_rng(7)  # the same mask every forward
        return float(np.sum(layer.forward(x) * g))

    loss()
    dx = layer.backward(g)
    errors["x"] = relative_error(dx, numerical_gradient(loss, x))
    assert errors["x"] < TOL
    assert 0 < (layer.mask == 0).sum() < 40  # some units dropped, not all


@pytest.mark.parametrize(
    "loss, target",
    [
        (SoftmaxCrossEntropy(), np.array([0, 3, 1, 4])),
        (MSE(), np.random.default_rng(3).standard_normal((4, 5))),
    ],
)
def test_loss_gradients_match_numerical(loss, target):
    z = np.random.default_rng(2).standard_normal((4, 5)) * 3

    def f():
        return loss.forward(z, target)

    f()
    analytic = loss.backward().copy()
    assert relative_error(analytic, numerical_gradient(f, z)) < TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    loss = SoftmaxCrossEntropy()
    value = loss.forward(np.array([[1000.0, 0.0, -1000.0]]), np.array([1]))
    assert value == pytest.approx(1000.0)
    assert np.allclose(loss.backward(), [[1.0, -1.0, 0.0]])


def test_whole_cnn_parameter_gradients_match_numerical():
    model = Sequential(
        [
            Conv2D(2, 3, padding="same"),
            MaxPool2D(2),
            ReLU(),
            Conv2D(3, (2, 3), stride=2),
            Tanh(),
            BatchNorm(),
            Flatten(),
            Dense(5),
            LeakyReLU(),
            Dense(3),
        ],
        input_shape=(1, 8, 8),
        seed=0,
        dtype=np.float64,
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 1, 8, 8)), np.array([0, 2, 1])

    def loss():
        return model.loss.forward(model.forward(x, training=True), y)

    loss()
    model.backward(model.loss.backward())
    for layer in model.layers:
        for name, p in layer.params.items():
            assert relative_error(layer.grads[name].copy(), numerical_gradient(loss, p)) < TOL, (layer, name)
