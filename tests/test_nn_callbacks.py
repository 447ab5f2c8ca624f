"""EarlyStopping and History: when training stops, which weights it ends with, what fit returns."""

import numpy as np

from nn import SGD, Callback, CallbackList, Dense, EarlyStopping, History, Sequential


def tiny_model():
    return Sequential([Dense(3)], input_shape=(4,), seed=0)


def feed(callback, values, key="val_loss", model=None):
    """Drive on_epoch_end with a metric sequence, changing the weights each epoch; returns the
    epoch at which the callback asked to stop (or None) and the weights seen at each epoch."""
    model = model or tiny_model()
    callback.on_train_begin(model)
    seen = []
    for epoch, v in enumerate(values, start=1):
        model.layers[0].params["W"][...] = epoch  # weights that name their epoch
        seen.append(model.get_weights())
        metrics = {"epoch": epoch, "loss": 1.0, "accuracy": 0.5, "val_loss": None, "val_accuracy": None, "seconds": 0.1}
        metrics[key] = v
        if callback.on_epoch_end(epoch, metrics):
            callback.on_train_end(model)
            return epoch, model
    callback.on_train_end(model)
    return None, model


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    stop, model = feed(EarlyStopping(patience=2), [0.9, 0.5, 0.6, 0.55, 0.4])
    assert stop == 4
    assert (model.layers[0].params["W"] == 2).all()  # epoch 2 had the lowest val_loss


def test_an_improvement_resets_the_patience():
    stop, _ = feed(EarlyStopping(patience=2), [0.9, 0.95, 0.8, 0.85, 0.7, 0.75, 0.76])
    assert stop == 7


def test_min_delta_ignores_tiny_improvements():
    stop, _ = feed(EarlyStopping(patience=2, min_delta=0.05), [1.0, 0.99, 0.98])
    assert stop == 3


def test_accuracy_is_maximised():
    stop, model = feed(EarlyStopping(patience=1, monitor="val_accuracy"), [0.5, 0.7, 0.6], key="val_accuracy")
    assert stop == 3 and (model.layers[0].params["W"] == 2).all()


def test_without_validation_it_watches_the_training_loss():
    stop, _ = feed(EarlyStopping(patience=1), [1.0, 0.9, 0.95], key="loss")
    assert stop == 3


def test_restore_best_false_keeps_the_last_weights():
    stop, model = feed(EarlyStopping(patience=1, restore_best=False), [0.5, 0.6])
    assert stop == 2 and (model.layers[0].params["W"] == 2).all()


def test_history_lists_epochs_and_indexes_by_metric():
    h = History()
    h.epochs += [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]
    assert len(h) == 2 and h["loss"] == [2.0, 1.0] and h["epoch"] == [1, 2]


def test_fit_without_shuffle_is_repeatable_and_learns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    runs = []
    for _ in range(2):
        model = Sequential([Dense(2)], input_shape=(4,), seed=1).compile(optimizer=SGD(0.1))
        history = model.fit(x, y, epochs=20, batch_size=10, shuffle=False)
        runs.append((model.predict(x), history["loss"]))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[0][1][-1] < runs[0][1][0] / 2
    assert (runs[0][0].argmax(axis=1) == y).mean() > 0.9


class Log(Callback):
    def __init__(self, name, events, stop_at=None):
        self.name, self.events, self.stop_at = name, events, stop_at

    def on_train_begin(self, model):
        self.events.append((self.name, "begin"))

    def on_batch_end(self, step, loss):
        self.events.append((self.name, "batch", step))

    def on_epoch_end(self, epoch, metrics):
        self.events.append((self.name, "epoch", epoch))
        return epoch == self.stop_at

    def on_train_end(self, model):
        self.events.append((self.name, "end"))


def test_fit_calls_every_hook_of_every_callback_and_stops_after_the_epoch_one_asked():
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    y = np.arange(8) % 3
    model = tiny_model()
    model.compile(SGD(0.1))
    events = []
    history = model.fit(x, y, epochs=5, batch_size=4, callbacks=[Log("a", events, stop_at=2), Log("b", events)])
    assert len(history) == 2
    per_epoch = [("a", "batch", 0), ("b", "batch", 0), ("a", "batch", 1), ("b", "batch", 1)]
    assert events == [
        ("a", "begin"),
        ("b", "begin"),
        *per_epoch,
        ("a", "epoch", 1),
        ("b", "epoch", 1),
        *per_epoch,
        ("a", "epoch", 2),
        ("b", "epoch", 2),
        ("a", "end"),
        ("b", "end"),
    ]


def test_a_callback_list_takes_only_callbacks():
    import pytest

    with pytest.raises(TypeError, match="Callback"):
        CallbackList([object()])


def test_the_base_callback_does_nothing_and_never_stops():
    cb = Callback()
    assert cb.on_epoch_end(1, {}) is None
    cb.on_train_begin(None), cb.on_batch_end(0, 0.0), cb.on_train_end(None)
