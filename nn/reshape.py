"""Flatten: (C, N, H, W) image batches -> (N, C·H·W), the bridge from convolutions to Dense."""

from math import prod

import numpy as np

from .layer import Layer


class Flatten(Layer):
    """Features in PyTorch's (C, H, W) order; other inputs (N, ...) flatten row-major."""

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        self.in_shape = tuple(input_shape)
        return (prod(input_shape),)

    def forward(self, x):
        if x.ndim == 4:  # (C, N, H, W)
            return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], -1)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        n = dy.shape[0]
        if len(self.in_shape) == 3:  # a (C, N, H, W) view; the layer below copies what it needs
            return dy.reshape((n,) + self.in_shape).transpose(1, 0, 2, 3)
        return dy.reshape((n,) + self.in_shape)
