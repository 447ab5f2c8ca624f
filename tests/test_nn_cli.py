"""`cvfleet train` and `cvfleet evaluate`: the seeds' train/test workflow, and one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from workers.commands.train import evaluate, train


@pytest.fixture()
def csv_data(tmp_path):
    """120 label-first rows of 785 values, labels tied to a bright 4x4 block's position."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 10
    pixels = rng.integers(0, 30, (120, 28, 28))
    for k, y in enumerate(labels):
        r, c = 2 + 2 * (y // 5) * 5, 2 + 5 * (y % 5)
        pixels[k, r : r + 4, c : c + 4] = 255
    path = tmp_path / "digits.csv"
    np.savetxt(path, np.column_stack([labels, pixels.reshape(120, -1)]), fmt="%d", delimiter=",")
    return path


SMALL = ["--set", "conv=[4]", "--set", "dense=16", "--batch-size", "16"]


def test_train_prints_each_epoch_saves_and_evaluate_agrees(csv_data, tmp_path):
    out = tmp_path / "model"
    result = CliRunner().invoke(
        train,
        ["--data", str(csv_data), "--epochs", "3", "--save", str(out), "--plots", str(tmp_path / "plots"), *SMALL],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 3
    assert "val_acc" in lines[1] and lines[1].rstrip().endswith(" s")
    final = next(line for line in lines if line.startswith("held-out accuracy:"))
    assert "(24 samples" in final  # 20 % of 120
    saved = json.loads((out / "training.json").read_text())
    assert saved["recipe"]["conv"] == [4] and saved["recipe"]["epochs"] == 3 and len(saved["history"]) == 3
    assert (tmp_path / "plots" / "learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "filters.png").stat().st_size > 1000

    result = CliRunner().invoke(evaluate, ["--model", str(out), "--data", str(csv_data), "--holdout", "0.2"])
    assert result.exit_code == 0, result.output
    accuracy = float(final.split()[2])
    assert result.output.startswith(f"held-out accuracy: {accuracy:.4f} (24 samples")
    result = CliRunner().invoke(evaluate, ["--model", str(out), "--data", str(csv_data)])
    assert result.output.startswith("all accuracy: ") and "(120 samples" in result.output


def test_spec_file_and_preset(csv_data, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('conv = [3]\ndense = 8\noptimizer = "adam"\nepochs = 1\n')
    result = CliRunner().invoke(train, ["--data", str(csv_data), "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    assert '"optimizer": "adam"' in result.output and '"lr": 0.001' in result.output
    result = CliRunner().invoke(train, ["--data", str(csv_data), "--preset", "mlp", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert '"conv": []' in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/x.csv"], "no such file"),
        (["--set", "lr=-1"], "recipe key 'lr'"),
        (["--set", "colour=blue"], "unknown recipe key"),
        (["--set", "lr"], "expected key=value"),
        (["--preset", "huge"], "unknown preset"),
        (["--spec", "SPEC"], "not valid JSON"),
    ],
)
def test_bad_input_is_a_one_line_error(csv_data, tmp_path, args, message):
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text("{conv: [8,")
    args = [str(bad_spec) if a == "SPEC" else a for a in args]
    if "--data" not in args:
        args = ["--data", str(csv_data), *args]
    result = CliRunner().invoke(train, args)
    assert result.exit_code != 0
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0], result.output


def test_malformed_data_and_missing_model(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1," + ",".join(["0"] * 784) + "\n2,0,0\n")
    result = CliRunner().invoke(train, ["--data", str(bad), "--epochs", "1"])
    assert result.exit_code != 0 and f"Error: {bad}: line 2: 3 values, expected 785" in result.output
    result = CliRunner().invoke(evaluate, ["--model", str(tmp_path / "none"), "--data", str(bad)])
    assert result.exit_code != 0 and "cannot load model" in result.output
