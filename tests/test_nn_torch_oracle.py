"""Layers against PyTorch as an oracle (values and gradients), where torch is installed.
Every layer also has a numerical-gradient test that needs no torch (test_nn_gradients.py)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from nn import MSE, AvgPool2D, BatchNorm, Conv2D, ConvPool2D, Dense, MaxPool2D, Sequential, SoftmaxCrossEntropy  # noqa: E402
from nn.recipe import build_model  # noqa: E402


def to_layer(x):
    """(N, C, H, W) -> the layers' (C, N, H, W)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


def run(layer, x_nchw, build_shape):
    """nn forward/backward with upstream gradient g; returns (y, dx, g) in NCHW."""
    rng = np.random.default_rng(0)
    layer.build(build_shape, np.random.default_rng(1), np.float64)
    layer.training = True
    y = layer.forward(to_layer(x_nchw))
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    return y.transpose(1, 0, 2, 3), dx.transpose(1, 0, 2, 3), g.transpose(1, 0, 2, 3)


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [
        (3, 1, "valid"),
        (3, 1, "same"),
        (3, 2, "valid"),
        ((2, 3), 1, "valid"),
        ((3, 2), 2, "valid"),
        (5, 3, "valid"),
        (3, 2, "same"),
        ((3, 5), 1, "same"),
    ],
)
def test_conv2d_matches_torch(kernel, stride, padding):
    x = np.random.default_rng(2).standard_normal((3, 2, 9, 8))
    layer = Conv2D(4, kernel, stride=stride, padding=padding)
    y, dx, g = run(layer, x, (2, 9, 8))
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(layer.params["W"], requires_grad=True)
    b = torch.tensor(layer.params["b"], requires_grad=True)
    pads = (layer.pl, layer.pr, layer.pt, layer.pb)  # TensorFlow-style 'same' may pad unevenly
    yt = F.conv2d(F.pad(xt, pads), w, b, stride=stride)
    yt.backward(torch.tensor(g))
    assert np.allclose(y, yt.detach().numpy(), atol=1e-10)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-10)
    assert np.allclose(layer.grads["W"], w.grad.numpy(), atol=1e-10)
    assert np.allclose(layer.grads["b"], b.grad.numpy(), atol=1e-10)


def test_convpool_relu_matches_torch_including_ties():
    x = np.random.default_rng(3).standard_normal((4, 3, 12, 11))
    x[0] = 0  # an empty image: every pooling window ties
    layer = ConvPool2D(5, 3, activation="relu")
    layer.build((3, 12, 11), np.random.default_rng(1), np.float64)
    layer.params["b"][...] = 0.1  # a positive bias: the ties survive the ReLU
    layer.training = True
    y = layer.forward(to_layer(x))
    g = np.random.default_rng(0).standard_normal(y.shape)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    w = torch.tensor(layer.params["W"], requires_grad=True)
    b = torch.tensor(layer.params["b"], requires_grad=True)
    yt = F.max_pool2d(F.relu(F.conv2d(xt, w, b)), 2)
    yt.backward(torch.tensor(g.transpose(1, 0, 2, 3)))
    assert np.allclose(y.transpose(1, 0, 2, 3), yt.detach().numpy(), atol=1e-10)
    assert np.allclose(dx.transpose(1, 0, 2, 3), xt.grad.numpy(), atol=1e-10)
    assert np.allclose(layer.grads["W"], w.grad.numpy(), atol=1e-10)
    assert np.allclose(layer.grads["b"], b.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize(
    "make, reference",
    [
        (lambda: MaxPool2D(2), lambda t: F.max_pool2d(t, 2)),
        (lambda: MaxPool2D(3, 2), lambda t: F.max_pool2d(t, 3, 2)),
        (lambda: AvgPool2D(2), lambda t: F.avg_pool2d(t, 2)),
        (lambda: AvgPool2D(3, 2), lambda t: F.avg_pool2d(t, 3, 2)),
    ],
)
def test_pooling_matches_torch(make, reference):
    x = np.random.default_rng(4).standard_normal((3, 2, 9, 7))
    y, dx, g = run(make(), x, (2, 9, 7))
    xt = torch.tensor(x, requires_grad=True)
    yt = reference(xt)
    yt.backward(torch.tensor(g))
    assert np.allclose(y, yt.detach().numpy(), atol=1e-12)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-12)


def test_dense_batchnorm_and_losses_match_torch():
    rng = np.random.default_rng(5)
    x, labels = rng.standard_normal((6, 5)), np.array([0, 2, 1, 2, 0, 1])
    model = Sequential([Dense(4), BatchNorm(), Dense(3)], input_shape=(5,), dtype=np.float64)
    out = model.forward(x, training=True)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(out, labels)
    model.backward(loss.backward())
    d1, bn, d2 = model.layers
    xt = torch.tensor(x)
    params = [
        torch.tensor(p, requires_grad=True)
        for p in (d1.params["W"], d1.params["b"], bn.params["gamma"], bn.params["beta"], d2.params["W"], d2.params["b"])
    ]
    w1, b1, gamma, beta, w2, b2 = params
    h = F.batch_norm(xt @ w1 + b1, None, None, gamma, beta, training=True, eps=bn.eps)
    vt = F.cross_entropy(h @ w2 + b2, torch.tensor(labels))
    vt.backward()
    assert value == pytest.approx(vt.item(), rel=1e-12)
    grads = [d1.grads["W"], d1.grads["b"], bn.grads["gamma"], bn.grads["beta"], d2.grads["W"], d2.grads["b"]]
    for ours, theirs in zip(grads, params):
        assert np.allclose(ours, theirs.grad.numpy(), atol=1e-10)
    mse = MSE()
    target = rng.standard_normal((6, 3))
    assert mse.forward(out, target) == pytest.approx(F.mse_loss(torch.tensor(out), torch.tensor(target)).item())


def test_reference_cnn_matches_torch_twin():
    """The default recipe's network and PyTorch's Conv-ReLU-MaxPool twin, same weights: same
    logits and same weight gradients on a batch of (mostly empty) images."""
    model = build_model({})
    model = Sequential(model.layers, input_shape=(1, 28, 28), dtype=np.float64)
    x = np.zeros((8, 1, 28, 28))
    x[:, :, 8:20, 10:18] = np.random.default_rng(6).random((8, 1, 12, 8))
    labels = np.arange(8) % 10
    loss = SoftmaxCrossEntropy()
    out = model.forward(x, training=True)
    loss.forward(out, labels)
    model.backward(loss.backward())
    c1, c2, _, d1, _, d2 = model.layers
    ps = [
        torch.tensor(p, requires_grad=True)
        for p in (
            c1.params["W"],
            c1.params["b"],
            c2.params["W"],
            c2.params["b"],
            d1.params["W"],
            d1.params["b"],
            d2.params["W"],
            d2.params["b"],
        )
    ]
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), ps[0], ps[1])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, ps[2], ps[3])), 2).flatten(1)
    logits = F.relu(h @ ps[4] + ps[5]) @ ps[6] + ps[7]
    F.cross_entropy(logits, torch.tensor(labels)).backward()
    assert np.allclose(out, logits.detach().numpy(), atol=1e-10)
    for layer, (w, b) in zip((c1, c2, d1, d2), zip(ps[::2], ps[1::2])):
        assert np.allclose(layer.grads["W"], w.grad.numpy(), atol=1e-10)
        assert np.allclose(layer.grads["b"], b.grad.numpy(), atol=1e-10)
