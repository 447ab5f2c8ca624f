"""Batch normalisation: after Dense, each of the D features of (N, D) over the batch; after
Conv2D, each of the C channels of (C, N, H, W) over batch and pixels."""

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
        d = input_shape[0] if len(input_shape) == 3 else input_shape[-1]
        self._add_param("gamma", np.ones(d))
        self._add_param("beta", np.zeros(d))
        self.buffers["running_mean"] = np.zeros(d, self.dtype)
        self.buffers["running_var"] = np.ones(d, self.dtype)
        return tuple(input_shape)

    @staticmethod
    def _axes(a):
        """The axes a statistic is taken over, and the broadcast shape of per-feature arrays."""
        if a.ndim == 4:
            return (1, 2, 3), (a.shape[0], 1, 1, 1)
        return tuple(range(a.ndim - 1)), (a.shape[-1],)

    def forward(self, x):
        axes, shape = self._axes(x)
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
        self.inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype).reshape(shape)
        self.xhat = (x - mean.reshape(shape)) * self.inv_std
        return self.xhat * self.params["gamma"].reshape(shape) + self.params["beta"].reshape(shape)

    def backward(self, dy):
        axes, shape = self._axes(dy)
        self.grads["gamma"][...] = (dy * self.xhat).sum(axis=axes)
        self.grads["beta"][...] = dy.sum(axis=axes)
        dxhat = dy * self.params["gamma"].reshape(shape)
        if not self.training:
            return dxhat * self.inv_std
        m = dy.size // len(self.params["gamma"])
        return (self.inv_std / m) * (
            m * dxhat
            - dxhat.sum(axis=axes, keepdims=True)
            - self.xhat * (dxhat * self.xhat).sum(axis=axes, keepdims=True)
        )

    def config(self):
        return {"momentum": self.momentum, "eps": self.eps}
