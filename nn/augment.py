"""Data augmentation: small random shifts and rotations of image batches.

A digit moved by a pixel or turned by a few degrees is still the same digit; showing the
network such variants each epoch makes it rely less on exact pixel positions.
"""

import numpy as np


def rotate_shift(x: np.ndarray, degrees: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Image i of (N, C, H, W) `x` rotated counter-clockwise by degrees[i] about its centre,
    then moved by shifts[i] = (down, right) pixels. Bilinear resampling, zeros where the
    image leaves the frame; one vectorised scipy call for the whole batch (SciPy is imported
    here, not at module load: every `cvfleet` command imports nn, few augment)."""
    from scipy.ndimage import map_coordinates

    n, c, h, w = x.shape
    angle = np.deg2rad(np.asarray(degrees, np.float64))
    shifts = np.asarray(shifts, np.float64).reshape(n, 2)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    yy = yy - shifts[:, 0, None, None]
    xx = xx - shifts[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    # output pixel (y, x) samples the input where the inverse motion takes it (y down, x right)
    src_y = cos * yy + sin * xx + cy
    src_x = -sin * yy + cos * xx + cx
    flat = x.reshape(n * c, h, w)
    sample = np.broadcast_to(np.arange(n * c, dtype=np.float64)[:, None, None], (n * c, h, w))
    coords = np.stack([sample, np.repeat(src_y, c, axis=0), np.repeat(src_x, c, axis=0)])
    out = map_coordinates(flat, coords, order=1, mode="constant", cval=0.0)
    return out.reshape(n, c, h, w).astype(x.dtype, copy=False)


def shift_rotate(
    x: np.ndarray, rng: np.random.Generator, max_shift: float = 2.0, max_degrees: float = 10.0
) -> np.ndarray:
    """Each image rotated by a uniform draw in ±max_degrees and shifted by uniform draws in
    ±max_shift pixels along each axis."""
    n = len(x)
    return rotate_shift(x, rng.uniform(-max_degrees, max_degrees, n), rng.uniform(-max_shift, max_shift, (n, 2)))


def augmenter(strength: float = 1.0):
    """An f(batch, rng) for Sequential.fit: strength 1.0 = shifts ±2 px, rotations ±10°."""

    def augment(x, rng):
        return shift_rotate(x, rng, 2.0 * strength, 10.0 * strength)

    return augment
