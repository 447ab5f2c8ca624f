"""2-D convolution as one matrix product (im2col + GEMM), channels-last.

Every output pixel is the dot product of one k×k×C patch of the input with each filter.
Copying all patches into the rows of a matrix ("im2col", M = N·OH·OW rows of K = kh·kw·C)
turns the whole layer into one GEMM, (M, K) @ (K, F), whose (M, F) result already is the
(N, OH, OW, F) output. The backward pass is two more GEMMs plus "col2im": scattering the
patch gradients back onto the input, one strided add per kernel offset (kh·kw adds, no loop
over pixels or samples).
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


def patches(xp: np.ndarray, kh: int, kw: int, stride: int, oh: int, ow: int) -> np.ndarray:
    """A read-only (N, OH, OW, kh, kw, C) view of every kernel-sized patch of padded NHWC `xp`."""
    sn, sh, sw, sc = xp.strides
    n, _, _, c = xp.shape
    return as_strided(xp, (n, oh, ow, kh, kw, c), (sn, stride * sh, stride * sw, sh, sw, sc), writeable=False)


class Conv2D(Layer):
    """`filters` filters of `kernel_size` (int or (kh, kw)), one bias per filter.

    Input (N, H, W, C), output (N, OH, OW, filters). Weights W have shape (kh, kw, C, filters),
    He-normal initialised (std sqrt(2 / (kh·kw·C))).
    """

    def __init__(self, filters: int, kernel_size=3, stride: int = 1, padding: str = "valid"):
        super().__init__()
        self.filters = int(filters)
        k = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        self.kernel_size = (int(k[0]), int(k[1]))
        self.stride = int(stride)
        self.padding = padding
        if self.stride < 1 or min(self.kernel_size) < 1 or self.filters < 1:
            raise ValueError("Conv2D needs filters, kernel size and stride >= 1")
        conv_output_size(1, 1, 1, padding)  # validates `padding`

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D expects (H, W, C) inputs, got shape {tuple(input_shape)}")
        h, w, c = input_shape
        kh, kw = self.kernel_size
        self.oh, self.pt, self.pb = conv_output_size(h, kh, self.stride, self.padding)
        self.ow, self.pl, self.pr = conv_output_size(w, kw, self.stride, self.padding)
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"Conv2D kernel {self.kernel_size} does not fit a {h}x{w} input with {self.padding!r} padding")
        self.in_shape = (h, w, c)
        fan_in = kh * kw * c
        self._add_param("W", rng.standard_normal((kh, kw, c, self.filters)) * np.sqrt(2.0 / fan_in))
        self._add_param("b", np.zeros(self.filters))
        return (self.oh, self.ow, self.filters)

    def _padded(self, x):
        if not (self.pt or self.pb or self.pl or self.pr):
            return np.ascontiguousarray(x)
        n, h, w, c = x.shape
        xp = self._scratch_array("xp", (n, h + self.pt + self.pb, w + self.pl + self.pr, c))
        xp.fill(0)
        xp[:, self.pt:self.pt + h, self.pl:self.pl + w] = x
        return xp

    def forward(self, x):
        n = x.shape[0]
        kh, kw = self.kernel_size
        c, f = self.in_shape[2], self.filters
        m, k = n * self.oh * self.ow, kh * kw * c
        cols = self._scratch_array("cols", (n, self.oh, self.ow, kh, kw, c))
        np.copyto(cols, patches(self._padded(x), kh, kw, self.stride, self.oh, self.ow))
        self.cols = cols.reshape(m, k)
        y = self._scratch_array("y", (m, f))
        np.matmul(self.cols, self.params["W"].reshape(k, f), out=y)
        y += self.params["b"]
        return y.reshape(n, self.oh, self.ow, f)

    def backward(self, dy):
        n = dy.shape[0]
        kh, kw = self.kernel_size
        h, w, c = self.in_shape
        f, s = self.filters, self.stride
        m, k = n * self.oh * self.ow, kh * kw * c
        dy = np.ascontiguousarray(dy).reshape(m, f)
        np.matmul(self.cols.T, dy, out=self.grads["W"].reshape(k, f))
        np.sum(dy, axis=0, out=self.grads["b"])
        if not self.input_grad:
            return None
        dcols = self._scratch_array("dcols", (m, k))
        np.matmul(dy, self.params["W"].reshape(k, f).T, out=dcols)
        dcols = dcols.reshape(n, self.oh, self.ow, kh, kw, c)
        hp, wp = h + self.pt + self.pb, w + self.pl + self.pr
        dxp = self._scratch_array("dxp", (n, hp, wp, c))
        dxp.fill(0)
        for i in range(kh):
            for j in range(kw):
                dxp[:, i:i + s * (self.oh - 1) + 1:s, j:j + s * (self.ow - 1) + 1:s] += dcols[:, :, :, i, j]
        return dxp[:, self.pt:self.pt + h, self.pl:self.pl + w]

    def config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "stride": self.stride, "padding": self.padding}
