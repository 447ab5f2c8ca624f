"""Element-wise nonlinearities (and Softmax, which normalises over the last axis)."""

import numpy as np

from .layer import Layer


class ReLU(Layer):
    """max(x, 0); the gradient passes where the input was positive."""

    def forward(self, x):
        self.positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dy):
        return dy * self.positive


class LeakyReLU(Layer):
    """x for x > 0, alpha·x otherwise: a small slope keeps units from dying."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, self.alpha * x)

    def backward(self, dy):
        return np.where(self.positive, dy, self.alpha * dy)

    def config(self):
        return {"alpha": self.alpha}


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def forward(self, x):
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1.0 - self.y)


class Tanh(Layer):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1.0 - self.y * self.y)


def softmax(z: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis; subtracting the max first keeps exp from overflowing."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Softmax(Layer):
    """A probability layer. To train a classifier, prefer the fused SoftmaxCrossEntropy loss
    on raw scores: it is cheaper and stable where log(softmax) would underflow."""

    def forward(self, x):
        self.y = softmax(x)
        return self.y

    def backward(self, dy):
        return self.y * (dy - (dy * self.y).sum(axis=-1, keepdims=True))
