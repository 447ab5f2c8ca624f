"""The `mnist` preset trained on MNIST's 60,000 training digits and tested once on the 10,000.

    .venv/bin/python benchmarks/bench_mnist.py            # the preset as it is
    .venv/bin/python benchmarks/bench_mnist.py --set epochs=2   # a quick look

The 60,000 are split (seed 0) into 55,000 to train on and 5,000 to validate on; the recipe
trains for its fixed number of epochs (no early stopping) and every epoch prints its
validation accuracy. The 10,000 test digits are read once, after training: nothing in the
recipe was chosen by them (the grid examples/grid-mnist.toml sweeps on mnist-train, a
hold-out of the same 60,000). The time S of the last line is the wall time from the first
training step to the test accuracy (per-epoch validation included, loading the files not).
The machine is shared: the load average before and after, and the CPU time the process got
per second of wall time (2.0 = both cores of a 2-core machine all the time), say how much of
it this run had. A benchmark prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import threadpoolctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn.callbacks import Callback  # noqa: E402
from nn.data import load_dataset, train_val_split  # noqa: E402
from nn.recipe import PRESETS, train_recipe, validate_recipe  # noqa: E402


class EpochLine(Callback):
    def on_epoch_end(self, epoch, m):
        print(
            f"epoch {epoch:2d}  loss {m['loss']:.4f}  acc {m['accuracy']:.4f}  "
            f"val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}  {m['seconds']:.1f} s",
            flush=True,
        )


def load_line() -> str:
    return "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mnist")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=JSON", help="recipe override")
    ap.add_argument("--holdout", type=int, default=5000, help="validation digits held out of the 60,000")
    args = ap.parse_args()

    from workers.asset_cache import ensure

    recipe = dict(PRESETS[args.preset])
    for item in args.sets:
        key, _, value = item.partition("=")
        recipe[key] = json.loads(value)
    recipe = validate_recipe(recipe)
    path = ensure("mnist")
    train, val = train_val_split(load_dataset(path, "train"), args.holdout, seed=0)
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpoolctl.threadpool_info()]
    print(f"machine: {os.cpu_count()} cores; numpy BLAS {blas}; {load_line()}")
    print(f"recipe {args.preset}: {json.dumps(recipe)}")
    print(f"data: {len(train.x)} train, {len(val.x)} validation (of the 60,000, split seed 0)", flush=True)

    cpu0, start = os.times(), time.perf_counter()
    model, history = train_recipe(recipe, train, val, callbacks=[EpochLine()])
    test = load_dataset(path, "test")
    test_loss, test_accuracy = model.evaluate(*test)
    seconds = time.perf_counter() - start
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(f"cpu time per wall second: {cpu / seconds:.2f}; {load_line()}")
    print(f"validation accuracy: {history['val_accuracy'][-1]:.4f} ({len(val.x)} digits)")
    print(f"test loss {test_loss:.4f} ({len(test.x)} digits)")
    print(f"mnist test accuracy: {test_accuracy:.4f} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
