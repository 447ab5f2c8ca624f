"""Dropout: while training, zero each input with probability `rate` (inverted dropout)."""

import numpy as np

from .layer import Layer


class Dropout(Layer):
    """Survivors are scaled by 1 / (1 - rate) during training, so inference is the identity."""

    def __init__(self, rate: float = 0.5):
        super().__init__()
        self.rate = float(rate)
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")

    def build(self, input_shape, rng, dtype):
        self.rng = rng  # the model's generator: one seed makes the masks reproducible
        return super().build(input_shape, rng, dtype)

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape, dtype=np.float32) >= self.rate).astype(x.dtype)
        self.mask *= 1.0 / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask

    def config(self):
        return {"rate": self.rate}
