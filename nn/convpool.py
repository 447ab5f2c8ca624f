"""Conv2D followed by 2×2 max pooling, fused: the layer the reference CNN spends its time in.

It computes exactly MaxPool2D(2)(Conv2D(filters, kernel, padding)(x)) (stride 1), with the
same parameters, but orders the im2col columns so that the GEMM writes the four members of
every pooling window into four separate contiguous blocks. Pooling then is three
element-wise maxima over long contiguous arrays, instead of strided 2×2 gathers.

How the columns get that order cheaply: the (padded) input is first split into its four
parity planes, plane (p, q) holding pixels (2h + p, 2w + q), stored (C, p, q, h, N, w):
rows of all images of a plane side by side. The input pixel that kernel offset (i, j)
reads for window member (a, b) of pooled output (ph, pw) is (2ph + a + i, 2pw + b + j),
i.e. pixel (ph + (a+i)//2, pw + (b+j)//2) of plane ((a+i)%2, (b+j)%2): a plain shifted
window of one plane. Computing each output row full plane width (Wq columns, the last few
discarded, as in Conv2D) makes that window one contiguous run of PH·N·Wq floats per
channel, so each im2col copy and col2im add moves a few long runs.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv import ConvBase, weight_gradient


class ConvPool2D(ConvBase):
    """Conv2D(filters, kernel_size, padding, stride 1) then MaxPool2D(2), in one layer;
    with activation='relu', then ReLU too (applied to the 4x smaller pooled output: max
    commutes with the monotone ReLU, so this equals Conv → ReLU → MaxPool).

    Input (C, N, H, W), output (filters, N, OH // 2, OW // 2). Weights as Conv2D:
    W (filters, C, kh, kw) He-normal, one bias per filter. The gradient of each window goes
    to its first maximum in row-major order, as in MaxPool2D and PyTorch.
    """

    def __init__(self, filters: int, kernel_size=3, padding: str = "valid", activation: str | None = None):
        super().__init__(filters, kernel_size, 1, padding)
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', not {activation!r}")
        self.activation = activation

    def build(self, input_shape, rng, dtype):
        (oh, self.pt, pb), (ow, self.pl, pr) = self._build_conv(input_shape, rng, dtype)
        c, h, w = self.in_shape
        kh, kw = self.kernel_size
        self.ph, self.pw = oh // 2, ow // 2
        if self.ph < 1 or self.pw < 1:
            raise ValueError(
                f"ConvPool2D: a {h}x{w} input leaves no 2x2 window after a {kh}x{kw} {self.padding!r} conv"
            )
        self._views = {}
        self.hq, self.wq = -(-(h + self.pt + pb) // 2), -(-(w + self.pl + pr) // 2)  # parity plane size
        return (self.filters, self.ph, self.pw)

    # -- parity planes ---------------------------------------------------------------------
    def _planes(self, name, n):
        """Flat zero-initialised storage of (C, 2, 2, Hq, N, Wq) planes plus slack for the
        full-width windows that run past the last plane."""
        c = self.in_shape[0]
        size = c * 4 * self.hq * n * self.wq
        slack = (self.kernel_size[0] // 2 + 2) * n * self.wq + self.kernel_size[1]
        flat = self._scratch_array(name, (size + slack,), zeros=True)
        return flat, flat[:size].reshape(c, 2, 2, self.hq, n, self.wq)

    def _parity_slices(self):
        """For each plane (p, q): (input rows, input cols, plane rows, plane cols) it holds."""
        c, h, w = self.in_shape
        out = []
        for p in (0, 1):
            r0 = (p - self.pt) % 2
            rows = len(range(r0, h, 2))
            h0 = (r0 + self.pt) // 2
            for q in (0, 1):
                c0 = (q - self.pl) % 2
                cols = len(range(c0, w, 2))
                w0 = (c0 + self.pl) // 2
                out.append((p, q, slice(r0, h, 2), slice(c0, w, 2), slice(h0, h0 + rows), slice(w0, w0 + cols)))
        return out

    def _windows(self, name, flat, n):
        """[((i, j), view)] for every kernel offset (i, j): a (C, 2, 2, PH·N·Wq) view whose
        [:, a, b] is the run of the plane that feeds window member (a, b). The four members
        read four different planes, so one copy (or add) serves all four. Cached while the
        buffer `name` stays the same array (as_strided costs microseconds)."""
        cached = self._views.get(name)
        if cached is None or cached[0] is not flat:
            cached = self._views[name] = (flat, list(self._make_windows(flat, n)))
        return cached[1]

    def _make_windows(self, flat, n):
        c = self.in_shape[0]
        s, row, plane = flat.itemsize, n * self.wq, self.hq * n * self.wq

        def offset(u, v):  # where padded-image row u, column v of plane-space starts
            return (2 * (u % 2) + v % 2) * plane + (u // 2) * row + v // 2

        kh, kw = self.kernel_size
        for i in range(kh):
            for j in range(kw):
                base = offset(i, j)
                step_a, step_b = offset(i + 1, j) - base, offset(i, j + 1) - base  # may be negative
                view = as_strided(flat[base:], (c, 2, 2, self.ph * row), (4 * plane * s, step_a * s, step_b * s, s))
                yield (i, j), view

    # -- forward / backward ----------------------------------------------------------------
    def forward(self, x):
        c, n = x.shape[:2]
        kh, kw = self.kernel_size
        f, L = self.filters, n * self.ph * self.wq
        flat, planes = self._planes("planes", n)
        for p, q, rows, cols_, prow, pcol in self._parity_slices():
            planes[:, p, q, prow, :, pcol] = x[:, :, rows, cols_].transpose(0, 2, 1, 3)
        cols = self._scratch_array("cols", (c, kh, kw, 2, 2, L))
        for (i, j), window in self._windows("planes", flat, n):
            np.copyto(cols[:, i, j], window)
        self.cols = cols.reshape(c * kh * kw, 4 * L)
        y = self._scratch_array("y", (f, 4 * L))
        np.matmul(self.params["W"].reshape(f, -1), self.cols, out=y)
        y += self.params["b"][:, None]
        m = y.reshape(f, 4, L)  # window members (0,0) (0,1) (1,0) (1,1), each (PH, N, Wq)
        # Work arrays are reused: a fresh 100 KB+ array per step costs page faults.
        self.right0 = np.greater(m[:, 1], m[:, 0], out=self._scratch_array("right0", (f, L), bool))
        self.right1 = np.greater(m[:, 3], m[:, 2], out=self._scratch_array("right1", (f, L), bool))
        top = np.maximum(m[:, 0], m[:, 1], out=self._scratch_array("top", (f, L)))
        bottom = np.maximum(m[:, 2], m[:, 3], out=self._scratch_array("bottom", (f, L)))
        self.lower = np.greater(bottom, top, out=self._scratch_array("lower", (f, L), bool))
        np.maximum(top, bottom, out=top)
        if self.activation == "relu":
            self.positive = np.greater(top, 0, out=self._scratch_array("positive", (f, L), bool))
            np.maximum(top, 0, out=top)
        return top.reshape(f, self.ph, n, self.wq)[:, :, :, : self.pw].transpose(0, 2, 1, 3)

    def backward(self, dy):
        n = dy.shape[1]
        f, L = self.filters, n * self.ph * self.wq
        full = self._scratch_array("dy_full", (f, self.ph, n, self.wq), zeros=True)
        full[:, :, :, : self.pw] = dy.transpose(0, 2, 1, 3)  # the discarded columns stay 0
        d = full.reshape(f, L)
        if self.activation == "relu":
            d *= self.positive
        np.sum(d, axis=1, out=self.grads["b"])  # each window's gradient reaches one conv output
        dm = self._scratch_array("dm", (f, 4, L))
        # Route each window's gradient to its first maximum. Multiplying by the boolean masks
        # is ~15x faster than np.where on them (no data-dependent branches).
        d_bottom = self._scratch_array("d_bottom", (f, L))
        np.multiply(d, self.lower, out=d_bottom)
        d_top = np.subtract(d, d_bottom, out=d)
        for k, (dd, right) in enumerate(((d_top, self.right0), (d_bottom, self.right1))):
            np.multiply(dd, right, out=dm[:, 2 * k + 1])
            np.subtract(dd, dm[:, 2 * k + 1], out=dm[:, 2 * k])
        dm = dm.reshape(f, 4 * L)
        weight_gradient(dm, self.cols, self.grads["W"].reshape(f, -1))
        if not self.input_grad:
            return None
        c, h, w = self.in_shape
        kh, kw = self.kernel_size
        dcols = self._scratch_array("dcols", self.cols.shape)
        np.matmul(self.params["W"].reshape(f, -1).T, dm, out=dcols)
        dcols = dcols.reshape(c, kh, kw, 2, 2, L)
        dflat, dplanes = self._planes("dplanes", n)
        dflat.fill(0)
        for (i, j), window in self._windows("dplanes", dflat, n):
            for a in (0, 1):  # per member: an in-place add over the 4-member view copies first
                for b in (0, 1):
                    np.add(window[:, a, b], dcols[:, i, j, a, b], out=window[:, a, b])
        dx = self._scratch_array("dx", (c, n, h, w))
        for p, q, rows, cols_, prow, pcol in self._parity_slices():
            dx[:, :, rows, cols_] = dplanes[:, p, q, prow, :, pcol].transpose(0, 2, 1, 3)
        return dx

    def config(self):
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "padding": self.padding,
            "activation": self.activation,
        }
