"""Max and average pooling over k×k windows, channels-last.

Both loop over the k·k offsets of a window (4 for the usual 2×2), each step one
vectorised operation on a strided view of the whole batch; never over pixels or samples.
Rows/columns that do not fill a whole window are dropped, as in PyTorch and Keras 'valid'.
"""

import numpy as np

from .layer import Layer


class _Pool2D(Layer):
    def __init__(self, pool_size: int = 2, stride: int | None = None):
        super().__init__()
        self.pool_size = int(pool_size)
        self.stride = int(stride) if stride is not None else self.pool_size
        if self.pool_size < 1 or self.stride < 1:
            raise ValueError("pool size and stride must be >= 1")

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (H, W, C) inputs, got {tuple(input_shape)}")
        h, w, c = input_shape
        self.in_shape = (h, w, c)
        self.oh = (h - self.pool_size) // self.stride + 1
        self.ow = (w - self.pool_size) // self.stride + 1
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"pool {self.pool_size} does not fit a {h}x{w} input")
        return (self.oh, self.ow, c)

    def _window(self, a, i, j):
        """The (N, OH, OW, C) view of the element at offset (i, j) of every window."""
        s = self.stride
        return a[:, i:i + s * (self.oh - 1) + 1:s, j:j + s * (self.ow - 1) + 1:s]

    def _offsets(self):
        return [(i, j) for i in range(self.pool_size) for j in range(self.pool_size)]

    def config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}


class MaxPool2D(_Pool2D):
    """The largest value of each window; the gradient goes to that one element
    (the first one in row-major window order when several tie, as in PyTorch)."""

    def forward(self, x):
        offsets = self._offsets()
        best = self._scratch_array("best", (x.shape[0], self.oh, self.ow, x.shape[3]), x.dtype)
        np.copyto(best, self._window(x, 0, 0))
        self.argmax = np.zeros(best.shape, np.uint8)
        better = np.empty(best.shape, bool)
        for q, (i, j) in enumerate(offsets[1:], start=1):
            v = self._window(x, i, j)
            np.greater(v, best, out=better)
            np.copyto(best, v, where=better)
            self.argmax[better] = q
        return best.copy()

    def backward(self, dy):
        h, w, c = self.in_shape
        dx = self._scratch_array("dx", (dy.shape[0], h, w, c), dy.dtype)
        dx.fill(0)
        hit = np.empty(dy.shape, bool)
        for q, (i, j) in enumerate(self._offsets()):
            np.equal(self.argmax, q, out=hit)
            win = self._window(dx, i, j)
            if self.stride >= self.pool_size:  # windows do not overlap: each element written once
                np.copyto(win, dy, where=hit)
            else:
                win += np.where(hit, dy, 0)
        return dx


class AvgPool2D(_Pool2D):
    """The mean of each window; the gradient is shared equally by the window's elements."""

    def forward(self, x):
        y = np.zeros((x.shape[0], self.oh, self.ow, x.shape[3]), x.dtype)
        for i, j in self._offsets():
            y += self._window(x, i, j)
        y *= 1.0 / self.pool_size ** 2
        return y

    def backward(self, dy):
        h, w, c = self.in_shape
        dx = np.zeros((dy.shape[0], h, w, c), dy.dtype)
        share = dy * (1.0 / self.pool_size ** 2)
        for i, j in self._offsets():
            self._window(dx, i, j)[...] += share
        return dx
