"""Training callbacks and the History `fit` returns.

A callback subclasses `Callback` and overrides the hooks it needs (as in Keras):
  on_train_begin(model)
  on_batch_end(step: int, loss: float)                       (step counts from 0 in each epoch)
  on_epoch_end(epoch: int, metrics: dict) -> bool | None     (True stops training)
  on_train_end(model)
`metrics` holds plain Python numbers: epoch (1-based), loss, accuracy, val_loss,
val_accuracy (None without validation data) and seconds (that epoch's wall time).
`fit` calls them through a `CallbackList`.
"""

import math


class Callback:
    """Do-nothing hooks; a callback overrides the ones it needs."""

    def on_train_begin(self, model) -> None:
        pass

    def on_batch_end(self, step: int, loss: float) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: dict) -> bool | None:
        return None

    def on_train_end(self, model) -> None:
        pass


class CallbackList(Callback):
    """Several callbacks as one: every hook reaches each in order; training stops after an epoch
    when any of them asked to (all of them still see that epoch)."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)
        bad = [c for c in self.callbacks if not isinstance(c, Callback)]
        if bad:
            raise TypeError(f"callbacks must subclass nn.callbacks.Callback, got {type(bad[0]).__name__}")

    def on_train_begin(self, model):
        for c in self.callbacks:
            c.on_train_begin(model)

    def on_batch_end(self, step, loss):
        for c in self.callbacks:
            c.on_batch_end(step, loss)

    def on_epoch_end(self, epoch, metrics):
        return any([bool(c.on_epoch_end(epoch, metrics)) for c in self.callbacks])  # noqa: C419 (every one runs)

    def on_train_end(self, model):
        for c in self.callbacks:
            c.on_train_end(model)


class History:
    """The per-epoch metrics dicts of one `fit`, in order."""

    def __init__(self):
        self.epochs: list[dict] = []

    def __getitem__(self, key: str) -> list:
        """history['val_accuracy'] -> that metric for every epoch."""
        return [e[key] for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    With restore_best, the model ends with the weights of its best epoch.
    Monitors val_loss by default (falls back to the training loss without validation data);
    metrics whose name contains 'accuracy' are maximised, others minimised.
    """

    def __init__(self, patience: int = 3, monitor: str = "val_loss", min_delta: float = 0.0, restore_best: bool = True):
        self.patience = int(patience)
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.restore_best = restore_best
        self.stopped_epoch = None

    def on_train_begin(self, model):
        self.model = model
        self.best = math.inf
        self.best_epoch = 0
        self.best_weights = None
        self.wait = 0

    def on_epoch_end(self, epoch, metrics):
        value = metrics.get(self.monitor)
        if value is None:
            value = metrics[self.monitor.removeprefix("val_")]
        score = -value if "accuracy" in self.monitor else value
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best:
                self.best_weights = self.model.get_weights()
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best and self.best_weights is not None:
            model.set_weights(self.best_weights)
