"""Max and average pooling over k×k windows of (C, N, H, W) batches.

The general case loops over the k·k offsets of a window, each step one vectorised
operation on a strided view of the whole batch (never a loop over pixels or samples).
The common 2×2 window with stride 2 has a faster path: a (C·N, H/2, 2, W/2, 2) view of the
input, reduced pairwise. Rows/columns that do not fill a whole window are dropped, as in
PyTorch and Keras 'valid' pooling.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

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
            raise ValueError(f"{type(self).__name__} expects (C, H, W) images, got {tuple(input_shape)}")
        c, h, w = input_shape
        self.in_shape = (c, h, w)
        self.oh = (h - self.pool_size) // self.stride + 1
        self.ow = (w - self.pool_size) // self.stride + 1
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"pool {self.pool_size} does not fit a {h}x{w} input")
        self.pairwise = self.pool_size == self.stride == 2
        return (c, self.oh, self.ow)

    def _window(self, a, i, j):
        """The (C, N, OH, OW) view of the element at offset (i, j) of every window."""
        s = self.stride
        return a[:, :, i : i + s * (self.oh - 1) + 1 : s, j : j + s * (self.ow - 1) + 1 : s]

    def _quads(self, a):
        """2×2/stride-2 windows of `a` as a (C·N, OH, 2, OW, 2) view (no copy). `a` may be a
        column slice of a wider array (a convolution's full-width output), as long as its
        C and N axes merge into one."""
        sc, sn, sh, sw = a.strides
        c, n = a.shape[:2]
        assert sc == n * sn, "channel and batch axes must merge"
        return as_strided(a, (c * n, self.oh, 2, self.ow, 2), (sn, 2 * sh, sh, 2 * sw, sw))

    def _offsets(self):
        return [(i, j) for i in range(self.pool_size) for j in range(self.pool_size)]

    def _zero_dropped_edges(self, dx):
        """Zero the rows/columns no window covers (the pairwise path writes only covered ones)."""
        dx[:, :, 2 * self.oh :] = 0
        dx[:, :, :, 2 * self.ow :] = 0

    def config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}


class MaxPool2D(_Pool2D):
    """The largest value of each window; the gradient goes to that one element, the first
    in row-major window order when several tie (as in PyTorch). Ties are common: a conv
    over an empty image border outputs its bias everywhere."""

    def forward(self, x):
        c, n = x.shape[:2]
        if self.pairwise and x.strides[0] == n * x.strides[1]:
            # Row-major first maximum: the larger of each row's two columns (col1: the right
            # one is strictly larger), then the larger of the two rows (row1: the lower one is).
            q = self._quads(x)
            self.col1 = q[..., 1] > q[..., 0]
            row_max = np.maximum(q[..., 0], q[..., 1])
            self.row1 = row_max[:, :, 1] > row_max[:, :, 0]
            y = np.maximum(row_max[:, :, 0], row_max[:, :, 1])
            return y.reshape(c, n, self.oh, self.ow)
        self.col1 = None
        best = np.array(self._window(x, 0, 0))
        self.argmax = np.zeros(best.shape, np.uint8)
        better = np.empty(best.shape, bool)
        for k, (i, j) in enumerate(self._offsets()[1:], start=1):
            v = self._window(x, i, j)
            np.greater(v, best, out=better)
            np.copyto(best, v, where=better)
            np.copyto(self.argmax, k, where=better)
        return best

    def backward(self, dy):
        c, h, w = self.in_shape
        n = dy.shape[1]
        dx = self._scratch_array("dx", (c, n, h, w), dy.dtype)
        if self.col1 is not None:
            dq = self._quads(dx)
            dy = dy.reshape(self.row1.shape)
            lower = dy * self.row1  # multiplying by masks: much faster than np.where on them
            for r, d in enumerate((dy - lower, lower)):
                right = dq[:, :, r, :, 1]
                np.multiply(d, self.col1[:, :, r], out=right)
                np.subtract(d, right, out=dq[:, :, r, :, 0])
            if h % 2 or w % 2:
                self._zero_dropped_edges(dx)
            return dx
        dx.fill(0)
        hit = np.empty(dy.shape, bool)
        for k, (i, j) in enumerate(self._offsets()):
            np.equal(self.argmax, k, out=hit)
            win = self._window(dx, i, j)
            if self.stride >= self.pool_size:  # windows do not overlap: each element written once
                np.copyto(win, dy, where=hit)
            else:
                win += np.where(hit, dy, 0)
        return dx


class AvgPool2D(_Pool2D):
    """The mean of each window; the gradient is shared equally by the window's elements."""

    def forward(self, x):
        y = np.zeros((x.shape[0], x.shape[1], self.oh, self.ow), x.dtype)
        for i, j in self._offsets():
            y += self._window(x, i, j)
        y *= 1.0 / self.pool_size**2
        return y

    def backward(self, dy):
        c, h, w = self.in_shape
        dx = np.zeros((c, dy.shape[1], h, w), dy.dtype)
        share = dy * (1.0 / self.pool_size**2)
        for i, j in self._offsets():
            self._window(dx, i, j)[...] += share
        return dx
