"""Augmentation moves and turns images as documented."""

import numpy as np

from nn.augment import augmenter, rotate_shift, shift_rotate


def images(n=3):
    return np.random.default_rng(0).random((n, 1, 8, 8)).astype(np.float32)


def test_whole_pixel_shift_moves_the_image_down_and_right():
    x = images()
    out = rotate_shift(x, np.zeros(3), np.tile([1.0, 2.0], (3, 1)))
    assert np.allclose(out[:, :, 1:, 2:], x[:, :, :-1, :-2], atol=1e-6)
    assert (out[:, :, 0, :] == 0).all() and (out[:, :, :, :2] == 0).all()


def test_quarter_turn_is_a_counter_clockwise_rot90():
    x = images()
    out = rotate_shift(x, np.full(3, 90.0), np.zeros((3, 2)))
    assert np.allclose(out, np.rot90(x, axes=(2, 3)), atol=1e-5)


def test_zero_strength_is_the_identity_and_keeps_dtype():
    x = images()
    out = shift_rotate(x, np.random.default_rng(1), max_shift=0.0, max_degrees=0.0)
    assert out.dtype == np.float32 and np.allclose(out, x, atol=1e-6)


def test_random_augmentation_is_seeded_and_changes_images():
    x = images()
    a = augmenter(1.0)(x, np.random.default_rng(4))
    b = augmenter(1.0)(x, np.random.default_rng(4))
    assert np.array_equal(a, b) and a.shape == x.shape and not np.allclose(a, x)


def test_bilinear_resampling_matches_scipy_map_coordinates_grid_constant():
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(2)
    x = rng.random((16, 2, 12, 10)).astype(np.float32)
    degrees, shifts = rng.uniform(-40, 40, 16), rng.uniform(-4, 4, (16, 2))
    out = rotate_shift(x, degrees, shifts)
    yy, xx = np.meshgrid(np.arange(12) - 5.5, np.arange(10) - 4.5, indexing="ij")
    for i in range(16):
        a = np.deg2rad(degrees[i])
        y, x_ = yy - shifts[i, 0], xx - shifts[i, 1]
        src = [np.cos(a) * y + np.sin(a) * x_ + 5.5, -np.sin(a) * y + np.cos(a) * x_ + 4.5]
        for c in range(2):
            expected = map_coordinates(x[i, c].astype(np.float64), src, order=1, mode="grid-constant")
            assert np.allclose(out[i, c], expected, atol=1e-5)
