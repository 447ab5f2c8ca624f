"""`cvfleet train` and `cvfleet evaluate`: the seeds' train/test workflow on the nn library.

    cvfleet train --data mnist5k --epochs 10 --save model --plots plots
    cvfleet evaluate --model model --data mnist5k --holdout 0.2

--data is a named data set (mnist5k, fashion-mnist: fetched by workers.asset_cache) or a path
(CSV, IDX file, or a directory of the four MNIST-layout IDX files). A data set with its own
test split (a directory) trains on train and reports test (the per-epoch validation is
then that test split too: read it, do not tune or early-stop on it); a single file is split
by a seeded hold-out (20 % by default; mnist5k → 4,000 train / 1,000 held out). To validate
on part of MNIST's 60,000 instead, train on mnist-train and evaluate the model on mnist:

    cvfleet train --data mnist-train --holdout 5000 --preset mnist --save mnist-model
    cvfleet evaluate --model mnist-model --data mnist
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from nn.callbacks import Callback
from workers.asset_cache import DATA_SETS, data_path
from workers.commands.base import command


def load_splits(data: str, holdout: float, split_seed: int, label: str):
    """(train, evaluation set, name of the evaluation set) for --data."""
    from nn.data import DataError, load_dataset, train_val_split

    path = data_path(data)
    if path.is_dir():
        return load_dataset(path, "train"), load_dataset(path, "test"), "test"
    ds = load_dataset(path, label=label)
    if not 0 < holdout < len(ds.x):
        raise DataError(f"--holdout {holdout} leaves no training or no held-out data")
    train, held = train_val_split(ds, holdout, seed=split_seed)
    return train, held, "held-out"


def _parse_value(text: str):
    """--set values: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_recipe(preset, spec, epochs, batch_size, lr, sets) -> dict:
    """Preset, then spec file, then --epochs/--batch-size/--lr, then --set key=value."""
    from nn.recipe import PRESETS, RecipeError, validate_recipe
    from workers.spec_file import read_table

    recipe = {}
    if preset:
        if preset not in PRESETS:
            raise RecipeError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        recipe.update(PRESETS[preset])
    if spec:
        recipe.update(read_table(spec, "spec", "a spec is a table/object of recipe keys", RecipeError))
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            recipe[key] = value
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq:
            raise RecipeError(f"--set {item!r}: expected key=value")
        recipe[key.strip()] = _parse_value(value.strip())
    return validate_recipe(recipe)


class Progress(Callback):
    """A tqdm bar per epoch and one summary line per epoch."""

    def __init__(self, steps: int, epochs: int):
        self.steps, self.epochs, self.bar, self.epoch = steps, epochs, None, 1

    def on_batch_end(self, step, loss):
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=self.steps, desc=f"epoch {self.epoch}/{self.epochs}", leave=False, unit="batch", disable=None
            )  # no bar when stderr is not a terminal (logs, pipes)
        self.bar.update(1)
        if step % 10 == 0:
            self.bar.set_postfix(loss=f"{loss:.4f}")

    def on_epoch_end(self, epoch, m):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.epoch = epoch + 1
        val = "" if m["val_accuracy"] is None else f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}"
        click.echo(
            f"epoch {epoch:3d}/{self.epochs}  loss {m['loss']:.4f}  acc {m['accuracy']:.4f}{val}  {m['seconds']:.1f} s"
        )


def write_plots(model, history, directory: Path) -> list[Path]:
    """learning_curves.png (loss and accuracy per epoch) and filters.png (the first layer's weights)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    epochs = [e["epoch"] for e in history.epochs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[key], "o-", label=f"train {key}")
        if history.epochs and history.epochs[0][f"val_{key}"] is not None:
            ax.plot(epochs, history[f"val_{key}"], "o-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    curves = directory / "learning_curves.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    w = model.layers[0].params["W"]
    if w.ndim == 4:  # conv (F, C, kh, kw): each filter's first input channel
        tiles = [w[f, 0] for f in range(w.shape[0])]
    else:  # dense on images: each unit's weights as an image
        c, h, wd = model.input_shape if len(model.input_shape) == 3 else (1, 1, w.shape[0])
        tiles = [w[:, u].reshape(c, h, wd)[0] for u in range(min(w.shape[1], 32))]
    cols = min(8, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (i, t) in zip(axes.ravel(), enumerate(tiles)):
        lim = float(np.abs(t).max()) or 1.0
        ax.imshow(t, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(str(i), fontsize=8)
    fig.suptitle("first layer filters (red +, blue -)")
    filters = directory / "filters.png"
    fig.savefig(filters, dpi=100)
    plt.close(fig)
    return [curves, filters]


@command()
@click.option("--data", required=True, help=f"{', '.join(DATA_SETS)}, or a path (CSV, IDX, IDX directory).")
@click.option("--epochs", type=int, help="Epochs (overrides the recipe).")
@click.option("--batch-size", type=int, help="Batch size (overrides the recipe).")
@click.option("--lr", type=float, help="Learning rate (overrides the recipe).")
@click.option("--spec", type=click.Path(dir_okay=False), help="Recipe file, JSON or TOML (keys: see nn/recipe.py).")
@click.option("--preset", help="Named recipe (nn/recipe.py PRESETS): reference, wide, mlp, fashion, mnist.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Recipe override, repeatable (conv=[16,32]).")
@click.option("--save", type=click.Path(file_okay=False), help="Directory to save the trained model in.")
@click.option("--plots", type=click.Path(file_okay=False), help="Directory for learning_curves.png and filters.png.")
@click.option(
    "--holdout", default=0.2, show_default=True, help="Held-out fraction (or count) of a single-file data set."
)
@click.option("--split-seed", default=0, show_default=True, help="Seed of the hold-out split.")
@click.option(
    "--label", type=click.Choice(["auto", "first", "last"]), default="auto", show_default=True, help="CSV label column."
)
def train(data, epochs, batch_size, lr, spec, preset, sets, save, plots, holdout, split_seed, label):
    """Train a CNN on --data, print per-epoch progress and the final held-out/test accuracy."""
    from nn.recipe import RecipeError, build_model, train_recipe

    recipe = build_recipe(preset, spec, epochs, batch_size, lr, sets)
    train_set, eval_set, eval_name = load_splits(data, holdout, split_seed, label)
    try:  # layers say a network does not fit the images with a plain ValueError
        build_model(recipe, input_shape=train_set.x.shape[1:])
    except ValueError as e:
        raise RecipeError(str(e)) from None
    click.echo(f"data {data}: {len(train_set.x)} train, {len(eval_set.x)} {eval_name}; recipe {json.dumps(recipe)}")
    steps = math.ceil(len(train_set.x) / recipe["batch_size"])
    model, history = train_recipe(recipe, train_set, eval_set, callbacks=[Progress(steps, recipe["epochs"])])
    loss, accuracy = model.evaluate(*eval_set)
    total = sum(e["seconds"] for e in history.epochs)
    click.echo(
        f"{eval_name} accuracy: {accuracy:.4f} ({len(eval_set.x)} samples, loss {loss:.4f}, "
        f"{len(history.epochs)} epochs in {total:.1f} s)"
    )
    if save:
        model.save(
            save,
            training={
                "data": data,
                "holdout": holdout,
                "split_seed": split_seed,
                "recipe": recipe,
                "history": history.epochs,
                f"{eval_name}_accuracy": accuracy,
            },
        )
        click.echo(f"saved model to {save}")
    if plots:
        for p in write_plots(model, history, Path(plots)):
            click.echo(f"wrote {p}")


@command()
@click.option("--model", "model_path", required=True, type=click.Path(), help="What `cvfleet train --save` wrote.")
@click.option("--data", required=True, help=f"{', '.join(DATA_SETS)}, or a path (CSV, IDX, IDX directory).")
@click.option(
    "--holdout",
    default=0.0,
    show_default=True,
    help="Evaluate only the seeded hold-out of a single file (0 = the whole file).",
)
@click.option("--split-seed", default=0, show_default=True, help="Seed of the hold-out split.")
@click.option("--label", type=click.Choice(["auto", "first", "last"]), default="auto", show_default=True)
def evaluate(model_path, data, holdout, split_seed, label):
    """Print a saved model's accuracy on --data (a directory's test split; a file's hold-out or all of it)."""
    from nn import load_model
    from nn.data import DataError, load_dataset, train_val_split
    from nn.errors import NNError

    try:
        model = load_model(model_path)
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise NNError(f"{model_path}: cannot load model: {e}") from None
    path = data_path(data)
    if path.is_dir():
        ds, name = load_dataset(path, "test"), "test"
    else:
        ds, name = load_dataset(path, label=label), "all"
        if holdout:
            ds, name = train_val_split(ds, holdout, seed=split_seed)[1], "held-out"
    if tuple(ds.x.shape[1:]) != tuple(model.input_shape):
        raise DataError(f"{data}: images of shape {ds.x.shape[1:]}, the model expects {tuple(model.input_shape)}")
    loss, accuracy = model.evaluate(*ds)
    click.echo(f"{name} accuracy: {accuracy:.4f} ({len(ds.x)} samples, loss {loss:.4f})")
