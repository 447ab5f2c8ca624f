"""A saved model loads back with the same architecture and predicts exactly the same."""

import json

import numpy as np
import pytest

import nn
from nn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential, load_model


def trained_model():
    model = Sequential(
        [
            Conv2D(4, 3, padding="same"),
            BatchNorm(),
            MaxPool2D(2),
            ReLU(),
            Conv2D(6, (3, 2), stride=2),
            ReLU(),
            Flatten(),
            Dense(16),
            ReLU(),
            Dropout(0.2),
            Dense(10),
        ],
        input_shape=(1, 12, 12),
        seed=3,
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 12, 12), dtype=np.float32), rng.integers(0, 10, 40)
    model.compile(optimizer=nn.Adam(0.01))
    model.fit(x, y, epochs=2, batch_size=8)
    return model, x


def test_round_trip_predicts_exactly_the_same(tmp_path):
    model, x = trained_model()
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]


def test_files_are_json_and_npz_without_pickles(tmp_path):
    model, _ = trained_model()
    model.save(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    assert spec["input_shape"] == [1, 12, 12]
    assert spec["layers"][0] == {
        "class": "Conv2D",
        "config": {"filters": 4, "kernel_size": [3, 3], "stride": 1, "padding": "same"},
    }
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as w:
        assert w["0.W"].shape == (4, 1, 3, 3)
        assert "1.running_mean" in w.files  # BatchNorm's running statistics travel too


def test_load_accepts_either_file_in_the_directory(tmp_path):
    model, x = trained_model()
    model.save(tmp_path / "m")
    for p in ("m/model.json", "m/weights.npz"):
        assert np.array_equal(load_model(tmp_path / p).predict(x[:5]), model.predict(x[:5]))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load_model(tmp_path / "nothing")


def test_weights_of_the_wrong_shape_are_rejected(tmp_path):
    model, _ = trained_model()
    model.save(tmp_path / "m")
    np.savez(tmp_path / "m" / "weights.npz", **{**model.get_weights(), "0.W": np.zeros((4, 1, 2, 2), np.float32)})
    with pytest.raises(ValueError, match="0.W"):
        load_model(tmp_path / "m")
