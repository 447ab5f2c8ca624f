"""Each optimizer's update equals the one computed by hand from its formula."""

import numpy as np
import pytest

from nn import SGD, Adam, RMSProp


def pair():
    return np.array([1.0, -2.0]), np.array([0.5, -1.0])


def test_sgd_plain_step():
    p, g = pair()
    SGD(lr=0.1).step([(p, g)])
    assert np.allclose(p, [1.0 - 0.05, -2.0 + 0.1])


def test_sgd_momentum_two_steps():
    p, g = pair()
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step([(p, g)])  # v1 = -0.1 g
    opt.step([(p, g)])  # v2 = 0.9 v1 - 0.1 g = -0.19 g
    assert np.allclose(p, np.array([1.0, -2.0]) - 0.29 * g)


def test_sgd_nesterov_two_steps():
    p, g = pair()
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.step([(p, g)])  # v1 = -0.1 g; p += 0.9 v1 - 0.1 g = -0.19 g
    opt.step([(p, g)])  # v2 = -0.19 g; p += 0.9 v2 - 0.1 g = -0.271 g
    assert np.allclose(p, np.array([1.0, -2.0]) - 0.461 * g)


def test_sgd_learning_rate_decay():
    p, g = pair()
    opt = SGD(lr=0.1, decay=0.5)
    opt.step([(p, g)])  # lr 0.1 / (1 + 0.5·0)
    opt.step([(p, g)])  # lr 0.1 / (1 + 0.5·1)
    assert np.allclose(p, np.array([1.0, -2.0]) - (0.1 + 0.1 / 1.5) * g)
    assert opt.current_lr() == pytest.approx(0.05)


def test_rmsprop_two_steps():
    p, g = pair()
    opt = RMSProp(lr=0.01, rho=0.9, eps=1e-8)
    opt.step([(p, g)])
    opt.step([(p, g)])
    s1 = 0.1 * g * g
    s2 = 0.9 * s1 + 0.1 * g * g
    expected = np.array([1.0, -2.0]) - 0.01 * g / (np.sqrt(s1) + 1e-8) - 0.01 * g / (np.sqrt(s2) + 1e-8)
    assert np.allclose(p, expected, rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    p, g = pair()
    Adam(lr=0.01).step([(p, g)])  # m̂ = g, v̂ = g², so the step is lr · sign(g)
    assert np.allclose(p, np.array([1.0, -2.0]) - 0.01 * np.sign(g), rtol=1e-6)


def test_adam_second_step_with_a_new_gradient():
    p, g = pair()
    g2 = np.array([-0.25, 2.0])
    opt = Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step([(p, g)])
    p_after_1 = p.copy()
    g[...] = g2
    opt.step([(p, g)])
    m = 0.9 * (0.1 * np.array([0.5, -1.0])) + 0.1 * g2
    v = 0.999 * (0.001 * np.array([0.5, -1.0]) ** 2) + 0.001 * g2**2
    step = 0.01 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert np.allclose(p, p_after_1 - step, rtol=1e-12)


def test_optimizers_update_in_place_and_keep_dtype():
    for opt in (SGD(0.1, momentum=0.9), RMSProp(), Adam()):
        p = np.ones(3, np.float32)
        before = p
        opt.step([(p, np.ones(3, np.float32))])
        assert p is before and p.dtype == np.float32 and (p < 1).all()


def test_non_positive_learning_rate_is_rejected():
    with pytest.raises(ValueError):
        SGD(lr=0.0)
