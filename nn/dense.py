"""Fully connected layer: y = x @ W + b."""

import numpy as np

from .layer import Layer


class Dense(Layer):
    """`units` outputs, each a weighted sum of all inputs plus its bias.

    Weights start He-normal (std sqrt(2 / fan_in)), which keeps activations' scale through
    ReLU networks; biases start at zero.
    """

    def __init__(self, units: int):
        super().__init__()
        self.units = int(units)

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        if len(input_shape) != 1:
            raise ValueError(f"Dense expects flat inputs, got shape {tuple(input_shape)}; add Flatten()")
        fan_in = input_shape[0]
        self._add_param("W", rng.standard_normal((fan_in, self.units)) * np.sqrt(2.0 / fan_in))
        self._add_param("b", np.zeros(self.units))
        return (self.units,)

    def forward(self, x):
        self.x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy):
        np.matmul(self.x.T, dy, out=self.grads["W"])
        np.sum(dy, axis=0, out=self.grads["b"])
        if not self.input_grad:
            return None
        return dy @ self.params["W"].T

    def config(self):
        return {"units": self.units}
