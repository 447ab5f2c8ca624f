"""Numerical gradient checks: the test that backward() is the derivative of forward().

Central differences, (f(x + eps) - f(x - eps)) / 2eps, in float64, compared with the
analytic gradient by relative error ||a - n|| / (||a|| + ||n||). Slow (two forwards per
element), so only for small inputs.
"""

import numpy as np


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d x for scalar f() that reads `x` (changed in place and restored)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_layer(layer, input_shape: tuple, batch: int = 2, seed: int = 0, training: bool = True) -> dict[str, float]:
    """Relative errors of d(loss)/d(input) and of each parameter's gradient for `layer`,
    with loss = sum(forward(x) · g) for a fixed random g; image shapes (C, H, W) get
    batches laid out (C, N, H, W) like the layers expect. Inputs stay at least 0.05 away
    from 0, so the kinks of ReLU-like functions are not straddled."""
    rng = np.random.default_rng(seed)
    layer.build(input_shape, rng, np.float64)
    layer.training = training
    shape = (input_shape[0], batch, *input_shape[1:]) if len(input_shape) == 3 else (batch, *input_shape)
    x = rng.uniform(0.05, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    g = rng.standard_normal(layer.forward(x.copy()).shape)

    def loss():
        return float(np.sum(layer.forward(x) * g))

    loss()
    dx = layer.backward(g.copy())
    analytic = {"x": np.array(dx, copy=True)} if dx is not None else {}
    analytic.update({k: v.copy() for k, v in layer.grads.items()})
    errors = {}
    if "x" in analytic:
        errors["x"] = relative_error(analytic["x"], numerical_gradient(loss, x))
    for name, p in layer.params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, p))
    return errors
