"""The shipped MNIST grid: it parses, validates on the training digits only, and holds the preset."""

from pathlib import Path

from nn.recipe import PRESETS, validate_recipe
from tasks.sweep_grid import parse_grid, read_grid, select

GRID = Path(__file__).resolve().parents[1] / "examples" / "grid-mnist.toml"


def test_grid_mnist_validates_on_a_holdout_of_the_training_digits_and_contains_the_mnist_preset():
    grid = parse_grid(read_grid(GRID))
    assert grid.data["data"] == "mnist-train" and grid.data["holdout"] == 5000  # never the test split
    recipes = [t.recipe for t in select(grid)]
    assert len(recipes) == grid.size == 18
    assert validate_recipe(PRESETS["mnist"]) in recipes
