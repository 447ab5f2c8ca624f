"""Flatten: (N, ...) -> (N, features), the bridge from convolutions to Dense layers."""

from math import prod

from .layer import Layer


class Flatten(Layer):
    """Row-major flattening of the channels-last feature map (H, W, C order)."""

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        self.in_shape = tuple(input_shape)
        return (prod(input_shape),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape((dy.shape[0],) + self.in_shape)
