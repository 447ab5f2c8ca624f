"""Batch normalisation over the last (feature / channel) axis.

Channels-last makes one layer serve both cases: after Dense it normalises each of the D
features over the batch, after Conv2D each of the C channels over batch and pixels.
"""

import numpy as np

from .layer import Layer


class BatchNorm(Layer):
    """y = gamma · (x - mean) / sqrt(var + eps) + beta.

    Training uses the batch's mean and (biased) variance and updates running estimates,
    running = momentum · running + (1 - momentum) · batch; inference uses the running ones.
    """

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5):
        super().__init__()
        self.momentum = float(momentum)
        self.eps = float(eps)

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        d = input_shape[-1]
        self._add_param("gamma", np.ones(d))
        self._add_param("beta", np.zeros(d))
        self.buffers["running_mean"] = np.zeros(d, self.dtype)
        self.buffers["running_var"] = np.ones(d, self.dtype)
        return tuple(input_shape)

    def forward(self, x):
        axes = tuple(range(x.ndim - 1))
        if self.training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            mu = self.momentum
            self.buffers["running_mean"] *= mu
            self.buffers["running_mean"] += (1 - mu) * mean
            self.buffers["running_var"] *= mu
            self.buffers["running_var"] += (1 - mu) * var
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        self.inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        self.xhat = (x - mean) * self.inv_std
        return self.xhat * self.params["gamma"] + self.params["beta"]

    def backward(self, dy):
        axes = tuple(range(dy.ndim - 1))
        self.grads["gamma"][...] = (dy * self.xhat).sum(axis=axes)
        self.grads["beta"][...] = dy.sum(axis=axes)
        dxhat = dy * self.params["gamma"]
        if not self.training:
            return dxhat * self.inv_std
        m = dy.size // dy.shape[-1]
        return (self.inv_std / m) * (m * dxhat - dxhat.sum(axis=axes) - self.xhat * (dxhat * self.xhat).sum(axis=axes))

    def config(self):
        return {"momentum": self.momentum, "eps": self.eps}
