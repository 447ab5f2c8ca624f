"""nn against PyTorch on the CPU: training throughput and accuracy of the reference CNN.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_nn.py

Reference CNN (nn.recipe defaults): Conv(1→8, 3×3) ReLU MaxPool2 → Conv(8→16, 3×3) ReLU
MaxPool2 → Flatten → Dense(400→128) ReLU → Dense(128→10); SGD lr 0.05 momentum 0.9, batch 64,
float32, on mnist5k (4,000 train / 1,000 held out). Both frameworks start from the same
initial weights and see the same batches in the same order, with the same thread count T
= NumPy's BLAS threads as threadpoolctl reports them (torch.set_num_threads(T)); a second
measurement gives both 1 thread (threadpoolctl limits BLAS), which load from other
processes on the machine disturbs less. Speed: the same training steps, timed in
alternating rounds, nn then torch; each round pair gives a ratio and the median pair ratio
is the result, so load from other processes, which comes and goes, hits both alike.
Accuracy: both trained for the same epochs, then evaluated on the held-out 1,000.
A benchmark prints numbers; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import threadpoolctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn.data import load_dataset, train_val_split  # noqa: E402
from nn.recipe import build_model, build_optimizer, validate_recipe  # noqa: E402


def mnist5k_path() -> Path:
    from workers.asset_cache import ensure

    return ensure("mnist5k")


def torch_twin(model, torch):
    """A PyTorch module with the nn model's exact initial weights (conv weights share
    PyTorch's layout; Dense stores W as (in, out), Linear as (out, in))."""
    tnn = torch.nn
    net = tnn.Sequential(
        tnn.Conv2d(1, 8, 3),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(8, 16, 3),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 128),
        tnn.ReLU(),
        tnn.Linear(128, 10),
    )
    conv1, conv2, dense1, dense2 = (l for l in model.layers if l.params)
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(conv1.params["W"]))
        net[0].bias.copy_(torch.from_numpy(conv1.params["b"]))
        net[3].weight.copy_(torch.from_numpy(conv2.params["W"]))
        net[3].bias.copy_(torch.from_numpy(conv2.params["b"]))
        net[7].weight.copy_(torch.from_numpy(dense1.params["W"].T.copy()))  # both flatten (c, h, w)
        net[7].bias.copy_(torch.from_numpy(dense1.params["b"]))
        net[9].weight.copy_(torch.from_numpy(dense2.params["W"].T.copy()))
        net[9].bias.copy_(torch.from_numpy(dense2.params["b"]))
    return net


class TorchTrainer:
    def __init__(self, net, recipe, torch):
        self.torch, self.net = torch, net
        self.opt = torch.optim.SGD(net.parameters(), lr=recipe["lr"], momentum=recipe["momentum"])
        self.loss = torch.nn.CrossEntropyLoss()

    def step(self, x, y):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.net(x), y)
        loss.backward()
        self.opt.step()

    def accuracy(self, x, y):
        with self.torch.no_grad():
            return float((self.net(x).argmax(1) == y).float().mean())


def batches(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="training steps per timed round")
    ap.add_argument("--rounds", type=int, default=15, help="alternating timed rounds per framework")
    ap.add_argument("--epochs", type=int, default=10, help="epochs for the accuracy comparison")
    args = ap.parse_args()

    import torch

    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    threads = blas[0]["num_threads"] if blas else os.cpu_count()
    torch.set_num_threads(threads)
    for i in blas:
        print(
            f"numpy BLAS: {i['internal_api']} {i['version']} kernel={i.get('architecture')} threads={i['num_threads']}"
        )
    print(
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}"
    )
    print(
        f"numpy {np.__version__}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"cpus {os.cpu_count()}"
    )
    print("load average (other processes share these cores): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    recipe = validate_recipe({})
    train, held = train_val_split(load_dataset(mnist5k_path()), 1000, seed=0)
    x_t, y_t = torch.from_numpy(train.x), torch.from_numpy(train.y)
    bs = recipe["batch_size"]

    # -- speed: same steps, same batches, alternating rounds --------------------------------
    rng = np.random.default_rng(1)
    plan = []
    while len(plan) < args.steps:
        plan += [b for b in batches(len(train.x), bs, rng) if len(b) == bs]
    plan = plan[: args.steps]
    nn_batches = [(train.x[b], train.y[b]) for b in plan]
    torch_batches = [(x_t[b], y_t[b]) for b in plan]

    def measure(t):
        """Paired rounds with t threads each; returns (nn rates, torch rates)."""
        model = build_model(recipe)
        model.compile(optimizer=build_optimizer(recipe))
        limit = threadpoolctl.threadpool_limits(t, user_api="blas")
        torch.set_num_threads(t)
        twin = TorchTrainer(torch_twin(model, torch), recipe, torch)
        for xb, yb in nn_batches[:10]:
            model.train_step(xb, yb)
        for xb, yb in torch_batches[:10]:
            twin.step(xb, yb)
        rates = {"nn": [], "torch": []}
        for _ in range(args.rounds):
            start = time.perf_counter()
            for xb, yb in nn_batches:
                model.train_step(xb, yb)
            rates["nn"].append(args.steps * bs / (time.perf_counter() - start))
            start = time.perf_counter()
            for xb, yb in torch_batches:
                twin.step(xb, yb)
            rates["torch"].append(args.steps * bs / (time.perf_counter() - start))
        limit.restore_original_limits()
        return rates

    results = {}
    for t in sorted({threads, 1}, reverse=True):
        rates = results[t] = measure(t)
        print(f"-- {t} thread(s) each, {args.rounds} rounds of {args.steps} steps of {bs}")
        for name, r in rates.items():
            print(
                f"{name:5s} samples/s: median {statistics.median(r):7.0f}  best {max(r):7.0f}   "
                f"(rounds: {', '.join(f'{v:.0f}' for v in r)})"
            )
        pairs = [a / b for a, b in zip(rates["nn"], rates["torch"])]
        print(
            f"ratio nn/torch with {t} thread(s): median of round pairs {statistics.median(pairs):.2f}, "
            f"best rounds {max(rates['nn']) / max(rates['torch']):.2f}"
        )
    torch.set_num_threads(threads)

    # -- accuracy: same init, same batches, same epochs -------------------------------------
    model = build_model(recipe)
    model.compile(optimizer=build_optimizer(recipe))
    twin = TorchTrainer(torch_twin(model, torch), recipe, torch)
    rng = np.random.default_rng(2)
    for _ in range(args.epochs):
        for b in batches(len(train.x), bs, rng):
            model.train_step(train.x[b], train.y[b])
            twin.step(x_t[b], y_t[b])
    acc_nn = model.evaluate(*held)[1]
    acc_torch = twin.accuracy(torch.from_numpy(held.x), torch.from_numpy(held.y))
    print(
        f"held-out accuracy after {args.epochs} epochs: nn {acc_nn:.4f}  torch {acc_torch:.4f}  "
        f"difference {100 * abs(acc_nn - acc_torch):.2f} pp"
    )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    pairs = [a / b for a, b in zip(results[threads]["nn"], results[threads]["torch"])]
    print(f"ratio nn/torch samples/s: {statistics.median(pairs):.2f}")


if __name__ == "__main__":
    main()
