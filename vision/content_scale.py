"""At what scale a video's pixels carry detail: how many frame pixels one pixel of its content spans.

A video made by upscaling (720p content in a 4K file, a digital zoom, the 3x clip of
benchmarks/bench_accuracy.py) has no more detail than its source. Tiles of `--tile` pixels at 1:1
then feed the net interpolated pixels: objects look blurred and larger than in training, and it
finds few of them. Given tiles of k x `--tile` frame pixels, which it scales back down by k, the net
sees the content at its own resolution again (vtest.avi upscaled 3x, against the net on the native
frames: recall 0.57 tiled at 1:1, 1.00 at k = 3).

**Finding k** (`knee_scale`): shrink a frame by a factor f and enlarge it back; e(f) is the mean
absolute difference to the frame. Content with detail down to one frame pixel loses some at every
f, smoothly (natural images look alike at every scale). Content upscaled by K loses almost nothing
until f passes K, then loses as native content would. So the knee ratio e(2f) / e(f) peaks near
f = K. k is the f of the highest ratio when that ratio reaches KNEE (2.4), else 1: native frames
read at most 1.91, upscales of 1.25x to 5x 2.13 to 3.00. It never read more than the true upscale,
so the tiles do not see the content shrunk; a blurred camera video reads as what it is, one with
less detail than pixels. The net is not asked: its confidence, tried as a check, went either way.
The measurements are in docs/design.md ("Measured history of vision/").
"""

import cv2
import numpy as np

SCALES = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)  # candidate content scales
KNEE = 2.4  # e(2f) / e(f) at least this: content that loses nothing until f, then everything
SAMPLE_FRAMES = 3
RULE_VERSION = 1  # in the detection fingerprint: another rule may size a video's tiles otherwise


def _loss(gray: np.ndarray, factor: float) -> float:
    """Mean absolute change of a gray frame shrunk by `factor` (area) and enlarged back (linear)."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return float(np.mean(np.abs(gray - cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))))


def knee_ratios(grays) -> dict:
    """{f: mean over the frames of e(2f) / e(f)} for f in SCALES (see the module docstring)."""
    return {f: float(np.mean([_loss(g, 2 * f) / max(_loss(g, f), 1e-6) for g in grays])) for f in SCALES}


def knee_scale(grays) -> float:
    """The content scale the frames' detail says (1 for camera footage); `grays`: 2-D float arrays,
    the frames in gray, each at least 64 px a side."""
    if not grays or min(grays[0].shape) < 64 * 2 * max(SCALES) / 5:
        return 1.0
    ratios = knee_ratios(grays)
    best = max(ratios, key=lambda f: (ratios[f], -f))
    return best if ratios[best] >= KNEE else 1.0
