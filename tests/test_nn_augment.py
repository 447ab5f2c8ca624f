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
