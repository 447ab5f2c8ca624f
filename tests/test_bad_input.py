"""Bad input, tried on purpose, over every command and task entry point.

Each case must end with a non-zero exit and exactly one line on stderr that names the problem,
and must change nothing outside its own record: no new batch or sweep in Redis, no output
directory created.

The command runs in the test process (`workers.cli.main` under click's CliRunner); the cases in
CHILD_PROCESS run the real `cvfleet` in a child: one proves the same line and exit code come out of a
real process, and `worker` would exec a Celery worker in place of pytest if its check ever let a bad
queue through.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from workers import asset_cache

from support.cli import cvfleet_here
from support.fleet import cvfleet

pytestmark = pytest.mark.fleet  # Redis must answer: records are compared before and after

# (case id, argv with {tmp}/{video}/{files} placeholders, substring the one line must contain)
CASES = [
    # annotate
    ("annotate-no-out", ["annotate", "{video}"], "--out"),
    ("annotate-no-videos", ["annotate", "--out", "{tmp}/o"], "VIDEOS"),
    ("annotate-empty-dir", ["annotate", "{tmp}/emptydir", "--out", "{tmp}/o"], "no video files"),
    ("annotate-tile-0", ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "0"], "tile width"),
    ("annotate-tile-negative", ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "-416"], "tile width"),
    ("annotate-tile-absurd", ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "100000"], "larger than any"),
    ("annotate-tile-h-0", ["annotate", "{video}", "--out", "{tmp}/o", "--tile-h", "0"], "tile height"),
    ("annotate-tile-text", ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "big"], "--tile"),
    ("annotate-overlap-1", ["annotate", "{video}", "--out", "{tmp}/o", "--overlap", "1"], "overlap"),
    ("annotate-overlap-1.5", ["annotate", "{video}", "--out", "{tmp}/o", "--overlap", "1.5"], "overlap"),
    ("annotate-overlap-negative", ["annotate", "{video}", "--out", "{tmp}/o", "--overlap", "-0.1"], "overlap"),
    ("annotate-overlap-nan", ["annotate", "{video}", "--out", "{tmp}/o", "--overlap", "nan"], "overlap"),
    ("annotate-every-0", ["annotate", "{video}", "--out", "{tmp}/o", "--every", "0"], "every"),
    ("annotate-fps-negative", ["annotate", "{video}", "--out", "{tmp}/o", "--fps", "-5"], "fps"),
    ("annotate-fps-inf", ["annotate", "{video}", "--out", "{tmp}/o", "--fps", "inf"], "fps"),
    ("annotate-every-and-fps", ["annotate", "{video}", "--out", "{tmp}/o", "--every", "2", "--fps", "5"], "not both"),
    ("annotate-max-frames-0", ["annotate", "{video}", "--out", "{tmp}/o", "--max-frames", "0"], "max_frames"),
    ("annotate-jpeg-0", ["annotate", "{video}", "--out", "{tmp}/o", "--jpeg-quality", "0"], "jpeg_quality"),
    ("annotate-conf-1.5", ["annotate", "{video}", "--out", "{tmp}/o", "--conf", "1.5"], "conf"),
    ("annotate-conf-nan", ["annotate", "{video}", "--out", "{tmp}/o", "--conf", "nan"], "conf"),
    ("annotate-nms-negative", ["annotate", "{video}", "--out", "{tmp}/o", "--nms", "-1"], "nms"),
    ("annotate-tile-16", ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "16"], "too small for a detector"),
    (
        "annotate-2037-tiles",
        ["annotate", "{video}", "--out", "{tmp}/o", "--tile", "32", "--overlap", "0.5"],
        "into 2037 tiles (more than 1024)",  # 1645 of 32 px, 391 coarse of 64 px, the full frame
    ),
    ("annotate-input-size-100", ["annotate", "{video}", "--out", "{tmp}/o", "--input-size", "100"], "multiple of 32"),
    ("annotate-unknown-class", ["annotate", "{video}", "--out", "{tmp}/o", "--classes", "person,unicorn"], "unicorn"),
    ("annotate-unknown-model", ["annotate", "{video}", "--out", "{tmp}/o", "--model", "yolov9000"], "yolov9000"),
    (
        "annotate-cfg-missing",
        [
            "annotate",
            "{video}",
            "--out",
            "{tmp}/o",
            "--cfg",
            "{tmp}/no.cfg",
            "--weights",
            "{tmp}/no.weights",
            "--names",
            "{files}/names.txt",
        ],
        "not a file",
    ),
    (
        "annotate-cfg-without-names",
        ["annotate", "{video}", "--out", "{tmp}/o", "--cfg", "{files}/names.txt", "--weights", "{files}/names.txt"],
        "--names",
    ),
    ("annotate-merge-unknown", ["annotate", "{video}", "--out", "{tmp}/o", "--merge", "average"], "--merge"),
    (
        "annotate-tiles-per-task-0",
        ["annotate", "{video}", "--out", "{tmp}/o", "--tiles-per-task", "0"],
        "tiles-per-task",
    ),
    ("annotate-static-missing", ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{tmp}/nope.txt"], "--static"),
    ("annotate-static-is-dir", ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{tmp}/emptydir"], "--static"),
    (
        "annotate-static-malformed",
        ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{files}/static-bad.txt"],
        "static-bad.txt:2",
    ),
    (
        "annotate-static-out-of-range",
        ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{files}/static-range.txt"],
        "static-range.txt:1",
    ),
    (
        "annotate-static-negative-class",
        ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{files}/static-neg.txt"],
        "static-neg.txt:1",
    ),
    ("annotate-static-binary", ["annotate", "{video}", "--out", "{tmp}/o", "--static", "{files}/random.bin"], "static"),
    ("annotate-same-name-twice", ["annotate", "{video}", "{files}/vtest.avi", "--out", "{tmp}/o"], "rename one"),
    # batch
    ("batch-show-unknown", ["batch", "show", "0123456789ab"], "no batch"),
    ("batch-show-no-id", ["batch", "show"], "BATCH_ID"),
    # sweep
    ("sweep-grid-missing", ["sweep", "run", "{tmp}/nope.toml"], "nope.toml"),
    ("sweep-grid-is-dir", ["sweep", "run", "{tmp}/emptydir"], "emptydir"),
    ("sweep-grid-empty", ["sweep", "run", "{files}/empty.toml"], "data is required"),
    ("sweep-grid-malformed-toml", ["sweep", "run", "{files}/broken.toml"], "broken.toml"),
    ("sweep-grid-malformed-json", ["sweep", "run", "{files}/broken.json"], "broken.json"),
    ("sweep-unknown-key", ["sweep", "run", "{files}/unknown-key.toml"], "learning_rate"),
    ("sweep-empty-list", ["sweep", "run", "{files}/empty-list.toml"], "lr"),
    ("sweep-lr-zero", ["sweep", "run", "{files}/lr-zero.toml"], "lr"),
    ("sweep-lr-negative", ["sweep", "run", "{files}/lr-negative.toml"], "lr"),
    ("sweep-lr-nan", ["sweep", "run", "{files}/lr-nan.toml"], "lr"),
    ("sweep-lr-inf", ["sweep", "run", "{files}/lr-inf.toml"], "lr"),
    ("sweep-batch-size-0", ["sweep", "run", "{files}/batch-zero.toml"], "batch_size"),
    ("sweep-unknown-data", ["sweep", "run", "{files}/unknown-data.toml"], "no-such-set"),
    ("sweep-too-many-trials", ["sweep", "run", "{files}/big.toml", "--max-trials", "3"], "3"),
    ("sweep-random-0", ["sweep", "run", "{files}/big.toml", "--random", "0"], "random"),
    ("sweep-show-unknown", ["sweep", "show", "0123456789ab"], "0123456789ab"),
    ("sweep-best-unknown", ["sweep", "best", "0123456789ab"], "0123456789ab"),
    ("sweep-export-unknown", ["sweep", "export", "0123456789ab", "--csv", "{tmp}/o.csv"], "0123456789ab"),
    ("sweep-plot-unknown", ["sweep", "plot", "0123456789ab", "--out", "{tmp}/o.png"], "0123456789ab"),
    ("sweep-delete-unknown", ["sweep", "delete", "0123456789ab"], "0123456789ab"),
    # train / evaluate
    ("train-data-missing", ["train", "--data", "{tmp}/nope.csv", "--epochs", "1"], "nope.csv"),
    ("train-data-random-bytes", ["train", "--data", "{files}/random.csv", "--epochs", "1"], "random.csv"),
    ("train-data-ragged", ["train", "--data", "{files}/ragged.csv", "--epochs", "1"], "line 2"),
    (
        "train-data-bad-label",
        ["train", "--data", "{files}/bad-label.csv", "--epochs", "1", "--label", "first"],
        "line 1",
    ),
    ("train-epochs-0", ["train", "--data", "mnist5k", "--epochs", "0"], "epochs"),
    ("train-batch-size-0", ["train", "--data", "mnist5k", "--batch-size", "0"], "batch"),
    ("train-lr-negative", ["train", "--data", "mnist5k", "--lr", "-0.1"], "lr"),
    ("train-lr-nan", ["train", "--data", "mnist5k", "--lr", "nan"], "lr"),
    ("train-set-unknown", ["train", "--data", "mnist5k", "--set", "wings=2"], "wings"),
    ("train-set-malformed", ["train", "--data", "mnist5k", "--set", "lr"], "key=value"),
    ("train-spec-missing", ["train", "--data", "mnist5k", "--spec", "{tmp}/nope.toml"], "nope.toml"),
    ("train-spec-malformed", ["train", "--data", "mnist5k", "--spec", "{files}/broken.toml"], "broken.toml"),
    ("train-preset-unknown", ["train", "--data", "mnist5k", "--preset", "giant"], "giant"),
    ("evaluate-model-missing", ["evaluate", "--model", "{tmp}/nomodel", "--data", "mnist5k"], "nomodel"),
    ("evaluate-model-empty-dir", ["evaluate", "--model", "{tmp}/emptydir", "--data", "mnist5k"], "emptydir"),
    # fleet and assets
    ("assets-fetch-unknown", ["assets", "fetch", "imagenet"], "imagenet"),
    ("worker-unknown-queue", ["worker", "--queues", "video,gpu"], "gpu"),
    ("up-concurrency-0", ["up", "--concurrency", "0"], "concurrency"),
    ("smoke-tasks-0", ["smoke", "--tasks", "0"], "tasks"),
    ("unknown-command", ["annotat"], "annotat"),
]
CHILD_PROCESS = {"unknown-command", "worker-unknown-queue"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-files")
    (d / "names.txt").write_text("person\n")
    (d / "static-bad.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 zero 0.1 0.1\n")
    (d / "static-range.txt").write_text("0 1.5 0.5 0.1 0.1\n")
    (d / "static-neg.txt").write_text("-1 0.5 0.5 0.1 0.1\n")
    (d / "random.bin").write_bytes(os.urandom(2048))
    (d / "random.csv").write_bytes(os.urandom(4096))
    (d / "ragged.csv").write_text(",".join(["0"] * 785) + "\n" + ",".join(["0"] * 300) + "\n")
    (d / "bad-label.csv").write_text(",".join(["42"] + ["0"] * 784) + "\n")
    (d / "empty.toml").write_text("")
    (d / "broken.toml").write_text("data = 'mnist5k'\n[sweep\nlr = [0.1\n")
    (d / "broken.json").write_text('{"data": "mnist5k", "sweep": {"lr": [0.1,')
    base = 'data = "mnist5k"\ntrain_limit = 100\nval_limit = 50\n[fixed]\nepochs = 1\n'
    (d / "unknown-key.toml").write_text(base + "[sweep]\nlearning_rate = [0.1, 0.2]\n")
    (d / "empty-list.toml").write_text(base + "[sweep]\nlr = []\n")
    (d / "lr-zero.toml").write_text(base + "[sweep]\nlr = [0.1, 0.0]\n")
    (d / "lr-negative.toml").write_text(base + "[sweep]\nlr = [-0.1]\n")
    (d / "lr-nan.toml").write_text(base + "[sweep]\nlr = [nan]\n")
    (d / "lr-inf.toml").write_text(base + "[sweep]\nlr = [inf]\n")
    (d / "batch-zero.toml").write_text(base + "[sweep]\nbatch_size = [0, 32]\n")
    (d / "unknown-data.toml").write_text(base.replace("mnist5k", "no-such-set") + "[sweep]\nlr = [0.1]\n")
    (d / "big.toml").write_text(base + "[sweep]\nlr = [0.01, 0.02]\nbatch_size = [16, 32]\n")
    shutil.copy(asset_cache.ensure("vtest.avi"), d / "vtest.avi")
    (d / "videos").mkdir()
    shutil.copy(asset_cache.ensure("vtest.avi"), d / "videos" / "vtest.avi")  # {video}: no case writes to it
    return d


RECORD_KEY = re.compile(r"^cvfleet:(batch:[0-9a-f]+(:video:\d+)?|sweep:[^:]+(:trial:[^:]+)?|batches|sweeps)$")


def redis_records():
    """The batch, video, sweep and trial records and the two indexes: what a submission writes.
    (Dispatch bookkeeping of batches still running from earlier tests comes and goes meanwhile.)"""
    from tasks.store import client

    r = client()
    keys = sorted(k for k in r.scan_iter("cvfleet:*", count=1000) if RECORD_KEY.match(k))
    return keys, r.zrange("cvfleet:batches", 0, -1), r.zrange("cvfleet:sweeps", 0, -1)


@pytest.mark.parametrize("case,argv,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_changes_nothing(fleet, files, tmp_path, case, argv, needle):
    (tmp_path / "emptydir").mkdir()
    args = [a.format(tmp=tmp_path, video=files / "videos" / "vtest.avi", files=files) for a in argv]
    before = redis_records()
    result = cvfleet(*args, timeout=120) if case in CHILD_PROCESS else cvfleet_here(*args)
    assert result.returncode != 0, result.stdout
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert needle in lines[0], lines[0]
    assert redis_records() == before
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.csv").exists() and not (tmp_path / "o.png").exists()
