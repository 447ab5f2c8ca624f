"""Sequential: a stack of layers trained with mini-batch gradient descent (Keras' shape of API).

    model = Sequential([Conv2D(8, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(10)],
                       input_shape=(1, 28, 28), seed=0)
    model.compile(optimizer=SGD(0.05, momentum=0.9))
    history = model.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv))

Images come in as (N, C, H, W); inside, image batches are (C, N, H, W) (see nn.layer).
float32 by default; dtype=np.float64 for gradient checks. One seed fixes the initial
weights, the shuffling and the dropout masks, so a run is reproducible.
"""

import time

import numpy as np

from .callbacks import CallbackList, History
from .layer import Layer
from .losses import LOSSES, SoftmaxCrossEntropy
from .optimizers import SGD


class Sequential:
    def __init__(self, layers: list[Layer], input_shape: tuple | None = None, seed: int = 0, dtype=np.float32):
        self.layers = list(layers)
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(self.seed)
        self.input_shape = None
        self.optimizer = SGD(0.01)
        self.loss = SoftmaxCrossEntropy()
        if input_shape is not None:
            self.build(input_shape)

    # -- structure -------------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        """Create every layer's parameters for inputs of `input_shape` ((C, H, W) or (D,))."""
        self.input_shape = tuple(int(d) for d in input_shape)
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            layer.input_grad = i > 0
            shape = layer.build(shape, self.rng, self.dtype)
        self.output_shape = shape

    def compile(self, optimizer=None, loss=None) -> "Sequential":
        """Choose the optimizer (default SGD lr 0.01) and loss (default softmax cross-entropy)."""
        if optimizer is not None:
            self.optimizer = optimizer
        if loss is not None:
            self.loss = LOSSES[loss]() if isinstance(loss, str) else loss
        return self

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(param, grad) pairs in layer order: what an optimizer walks."""
        return [(layer.params[k], layer.grads[k]) for layer in self.layers for k in layer.params]

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers, keyed '<layer index>.<name>'."""
        out = {}
        for i, layer in enumerate(self.layers):
            for k, v in {**layer.params, **layer.buffers}.items():
                out[f"{i}.{k}"] = v.copy()
        return out

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            for k, v in {**layer.params, **layer.buffers}.items():
                w = weights[f"{i}.{k}"]
                if w.shape != v.shape:
                    raise ValueError(f"weight {i}.{k} has shape {w.shape}, the layer expects {v.shape}")
                v[...] = w

    def summary(self) -> str:
        lines = [f"input {self.input_shape}"]
        for layer in self.layers:
            n = sum(p.size for p in layer.params.values())
            lines.append(f"{layer!r:<60} params {n}")
        lines.append(f"total params {sum(p.size for p, _ in self.parameters())}")
        return "\n".join(lines)

    # -- computation -----------------------------------------------------------------------
    def _ensure_built(self, x):
        if self.input_shape is None:
            self.build(x.shape[1:])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, self.dtype)
        if x.ndim == 4:
            x = np.ascontiguousarray(x.transpose(1, 0, 2, 3))  # free when C = 1
        for layer in self.layers:
            layer.training = training
            x = layer.forward(x)
        return x.transpose(1, 0, 2, 3) if x.ndim == 4 else x

    def backward(self, dy: np.ndarray) -> None:
        if dy.ndim == 4:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2, 3))
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:
                break

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One forward, backward and optimizer step; returns (batch loss, correct predictions)."""
        out = self.forward(x, training=True)
        loss = self.loss.forward(out, y)
        self.backward(self.loss.backward())
        self.optimizer.step(self.parameters())
        correct = int((out.argmax(axis=1) == y).sum()) if y.ndim == 1 else 0
        return loss, correct

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The last layer's outputs (class scores: argmax is the predicted class)."""
        self._ensure_built(x)
        # copies: a layer's output may live in a work array the next batch overwrites
        return np.concatenate([np.array(self.forward(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
        """(mean loss, accuracy) over the whole set, in inference mode."""
        out = self.predict(x, batch_size)
        loss = self.loss.forward(out, y)
        accuracy = float((out.argmax(axis=1) == y).mean()) if y.ndim == 1 else float("nan")
        return loss, accuracy

    def fit(
        self,
        x,
        y,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data=None,
        shuffle: bool = True,
        callbacks=(),
        augment=None,
        initial_epoch: int = 0,
    ) -> History:
        """Train for `epochs` passes over (x, y) in mini-batches.

        augment: optional f(batch, rng) -> batch applied to every training batch.
        initial_epoch: epochs already trained (a run resumed from nn.checkpoint): training goes on
        with epoch initial_epoch + 1, and the history holds only the epochs trained now.
        Callbacks see each epoch's metrics (see nn.callbacks) and may stop training early.
        """
        self._ensure_built(x)
        history = History()
        callbacks = CallbackList(callbacks)
        callbacks.on_train_begin(self)
        n = len(x)
        for epoch in range(initial_epoch + 1, epochs + 1):
            start = time.perf_counter()
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            total_loss, total_correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb, self.rng)
                loss, correct = self.train_step(xb, yb)
                total_loss += loss * len(idx)
                total_correct += correct
                callbacks.on_batch_end(i // batch_size, loss)
            metrics = {
                "epoch": epoch,
                "loss": total_loss / n,
                "accuracy": total_correct / n,
                "val_loss": None,
                "val_accuracy": None,
            }
            if validation_data is not None:
                metrics["val_loss"], metrics["val_accuracy"] = self.evaluate(*validation_data)
            metrics["seconds"] = time.perf_counter() - start
            history.epochs.append(metrics)
            if callbacks.on_epoch_end(epoch, metrics):
                break
        callbacks.on_train_end(self)
        return history

    # -- persistence -----------------------------------------------------------------------
    def save(self, path, training: dict | None = None) -> None:
        """Write `path`/model.json (architecture), `path`/weights.npz and, if given, the training
        record `path`/training.json (see nn.serialize)."""
        from .serialize import save_model

        save_model(self, path, training)
