"""2-D convolution as one matrix product (im2col + GEMM).

Every output pixel is the dot product of one C×kh×kw patch of the input with each filter.
Copying all patches into the columns of a matrix ("im2col", K = C·kh·kw rows by
M = N·OH·OW columns) turns the whole layer into one GEMM, (F, K) @ (K, M), whose (F, M)
result already is the (F, N, OH, OW) output. The backward pass is two more GEMMs plus
"col2im": adding the patch gradients back onto the input, one strided add per kernel offset.

Batches are laid out (C, N, H, W), channels first and batch second (see nn.layer): then
each of the kh·kw im2col copies and col2im adds moves whole image rows, and the GEMM's
output needs no transpose.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .layer import Layer


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output size, padding before, padding after) along one axis.

    'valid': no padding, floor((size - kernel) / stride) + 1 outputs.
    'same': ceil(size / stride) outputs, zero padding split as TensorFlow does (extra at the end).
    """
    if padding == "valid":
        out = (size - kernel) // stride + 1
        return out, 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")


def weight_gradient(dy: np.ndarray, cols: np.ndarray, out: np.ndarray, cache_floats: int = 80_000) -> None:
    """out = dy @ cols.T, an (F, K) product summed over M = N·OH·OW columns, in blocks of
    columns holding about `cache_floats` floats of both operands (320 KB: they stay in the
    L2 cache). One GEMM with so long a reduction and so small a result streams both
    operands from memory; blocked, it ran 2-4x faster here (OpenBLAS, 1 or 2 threads)."""
    f, k = out.shape
    m = cols.shape[1]
    block = max(256, 1 << int(np.log2(max(cache_floats // (f + k), 1))))
    if block >= m:
        np.matmul(dy, cols.T, out=out)
        return
    part = np.empty_like(out)
    np.matmul(dy[:, :block], cols[:, :block].T, out=out)
    for s in range(block, m, block):
        np.matmul(dy[:, s : s + block], cols[:, s : s + block].T, out=part)
        out += part


class ConvBase(Layer):
    """What every 2-D convolution shares, as `_ConvNd` in PyTorch: argument checks, the output
    geometry along both axes, and the parameters: W (filters, C, kh, kw), He-normal initialised
    (std sqrt(2 / (C·kh·kw)), the fan-in of one output), and one bias per filter, zero."""

    def __init__(self, filters: int, kernel_size=3, stride: int = 1, padding: str = "valid"):
        super().__init__()
        self.filters = int(filters)
        k = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        self.kernel_size = (int(k[0]), int(k[1]))
        self.stride = int(stride)
        self.padding = padding
        if self.stride < 1 or min(self.kernel_size) < 1 or self.filters < 1:
            raise ValueError(f"{type(self).__name__} needs filters, kernel size and stride >= 1")
        conv_output_size(1, 1, 1, padding)  # validates `padding`

    def _build_conv(self, input_shape, rng, dtype):
        """Build the parameters; returns ((OH, top, bottom), (OW, left, right)): output size and
        padding along each axis."""
        super().build(input_shape, rng, dtype)
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects (C, H, W) images, got shape {tuple(input_shape)}")
        c, h, w = input_shape
        kh, kw = self.kernel_size
        self.in_shape = (c, h, w)
        self._add_param("W", rng.standard_normal((self.filters, c, kh, kw)) * np.sqrt(2.0 / (c * kh * kw)))
        self._add_param("b", np.zeros(self.filters))
        return conv_output_size(h, kh, self.stride, self.padding), conv_output_size(w, kw, self.stride, self.padding)


class Conv2D(ConvBase):
    """`filters` filters of `kernel_size` (int or (kh, kw)), one bias per filter.

    Input (C, N, H, W), output (filters, N, OH, OW). Weights W have PyTorch's shape
    (filters, C, kh, kw), He-normal initialised (see ConvBase).
    """

    def build(self, input_shape, rng, dtype):
        (self.oh, self.pt, self.pb), (self.ow, self.pl, self.pr) = self._build_conv(input_shape, rng, dtype)
        if self.oh < 1 or self.ow < 1:
            c, h, w = input_shape
            raise ValueError(
                f"Conv2D kernel {self.kernel_size} does not fit a {h}x{w} input with {self.padding!r} padding"
            )
        return (self.filters, self.oh, self.ow)

    def _window(self, a, i, j):
        """The (C, N, OH, OW) view of `a` under kernel offset (i, j): what meets W[:, :, i, j]."""
        s = self.stride
        return a[:, :, i : i + s * (self.oh - 1) + 1 : s, j : j + s * (self.ow - 1) + 1 : s]

    def _row_window(self, flat, c, n, i, j):
        """Stride 1: the (C, N, OH·Wp) view of padded images stored flat (C·N·Hp·Wp + slack)
        under offset (i, j). Output rows are computed full width (Wp columns, of which the
        last kw - 1 wrap into the next row and are discarded), so that each copy moves whole
        runs of OH·Wp floats instead of OH runs of OW."""
        hp, wp = self.in_shape[1] + self.pt + self.pb, self.in_shape[2] + self.pl + self.pr
        s = flat.itemsize
        return as_strided(flat[i * wp + j :], (c, n, self.oh * wp), (n * hp * wp * s, hp * wp * s, s), writeable=False)

    def forward(self, x):
        c, n, h, w = x.shape
        kh, kw = self.kernel_size
        hp, wp = h + self.pt + self.pb, w + self.pl + self.pr
        if self.stride == 1:
            flat = self._scratch_array("flat", (c * n * hp * wp + kw - 1,))
            flat[c * n * hp * wp :] = 0
            xp = flat[: c * n * hp * wp].reshape(c, n, hp, wp)
            if hp != h or wp != w:
                xp.fill(0)
            xp[:, :, self.pt : self.pt + h, self.pl : self.pl + w] = x
            cols = self._scratch_array("cols", (c, kh, kw, n, self.oh * wp))
            for i in range(kh):
                for j in range(kw):
                    np.copyto(cols[:, i, j], self._row_window(flat, c, n, i, j))
            width = wp
        else:
            if hp != h or wp != w:
                xp = self._scratch_array("xp", (c, n, hp, wp))
                xp.fill(0)
                xp[:, :, self.pt : self.pt + h, self.pl : self.pl + w] = x
            else:
                xp = x
            cols = self._scratch_array("cols", (c, kh, kw, n, self.oh, self.ow))
            for i in range(kh):
                for j in range(kw):
                    np.copyto(cols[:, i, j], self._window(xp, i, j))
            width = self.ow
        self.width = width  # columns computed per output row (>= OW)
        self.cols = cols.reshape(c * kh * kw, -1)
        y = self._scratch_array("y", (self.filters, self.cols.shape[1]))
        np.matmul(self.params["W"].reshape(self.filters, -1), self.cols, out=y)
        y += self.params["b"][:, None]
        return y.reshape(self.filters, n, self.oh, width)[:, :, :, : self.ow]

    def backward(self, dy):
        n = dy.shape[1]
        c, h, w = self.in_shape
        kh, kw = self.kernel_size
        if self.width != self.ow:  # back to the full-width layout; the wrapped columns get 0
            full = self._scratch_array("dy_full", (self.filters, n, self.oh, self.width))
            full[:, :, :, self.ow :] = 0
            full[:, :, :, : self.ow] = dy
            dy = full
        dy = np.ascontiguousarray(dy).reshape(self.filters, -1)
        weight_gradient(dy, self.cols, self.grads["W"].reshape(self.filters, -1))
        np.sum(dy, axis=1, out=self.grads["b"])
        if not self.input_grad:
            return None
        dcols = self._scratch_array("dcols", self.cols.shape)
        np.matmul(self.params["W"].reshape(self.filters, -1).T, dy, out=dcols)
        hp, wp = h + self.pt + self.pb, w + self.pl + self.pr
        if self.stride == 1:
            dcols = dcols.reshape(c, kh, kw, n, self.oh * wp)
            dflat = self._scratch_array("dflat", (c * n * hp * wp + kw - 1,))
            dflat.fill(0)
            for i in range(kh):
                for j in range(kw):
                    win = as_strided(
                        dflat[i * wp + j :], dcols[:, i, j].shape, self._row_window(dflat, c, n, i, j).strides
                    )
                    win += dcols[:, i, j]
            dxp = dflat[: c * n * hp * wp].reshape(c, n, hp, wp)
        else:
            dcols = dcols.reshape(c, kh, kw, n, self.oh, self.ow)
            dxp = self._scratch_array("dxp", (c, n, hp, wp))
            dxp.fill(0)
            for i in range(kh):
                for j in range(kw):
                    self._window(dxp, i, j)[...] += dcols[:, i, j]
        return dxp[:, :, self.pt : self.pt + h, self.pl : self.pl + w]

    def config(self):
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "stride": self.stride,
            "padding": self.padding,
        }
