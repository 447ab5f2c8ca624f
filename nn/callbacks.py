"""Training callbacks and the History `fit` returns.

A callback is any object with optional methods:
  on_train_begin(model)
  on_epoch_end(epoch: int, metrics: dict) -> bool | None   (True stops training)
  on_train_end(model)
`metrics` holds plain Python numbers: epoch (1-based), loss, accuracy, val_loss,
val_accuracy (None without validation data) and seconds (that epoch's wall time).
"""

import math


class History:
    """The per-epoch metrics dicts of one `fit`, in order."""

    def __init__(self):
        self.epochs: list[dict] = []

    def __getitem__(self, key: str) -> list:
        """history['val_accuracy'] -> that metric for every epoch."""
        return [e[key] for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)


class EarlyStopping:
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
