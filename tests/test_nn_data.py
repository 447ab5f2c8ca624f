"""Every data format loads to (N, 1, H, W) float32 in 0..1 with int64 labels; malformed files
raise a one-line DataError naming the file and the line or item."""

import gzip

import numpy as np
import pytest

from nn.data import DataError, Dataset, load_csv, load_dataset, load_idx, load_idx_dir, train_val_split


def sample(n=6, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 784))
    pixels[:, 0] = pixels[:, -1] = 0  # corners are empty, as in MNIST
    labels = np.arange(n) % 10
    return pixels, labels


def write_csv(path, rows, gz=False, header=None):
    text = (header + "\n" if header else "") + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def check(ds, pixels, labels):
    assert isinstance(ds, Dataset)
    assert ds.x.shape == (len(labels), 1, 28, 28) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64 and np.array_equal(ds.y, labels)
    assert np.allclose(ds.x.reshape(len(labels), -1), pixels / 255.0)


def test_label_first_csv(tmp_path):
    pixels, labels = sample()
    path = write_csv(tmp_path / "mnist_train.csv", np.column_stack([labels, pixels]))
    check(load_csv(path, label="first"), pixels, labels)
    check(load_dataset(path), pixels, labels)  # auto


def test_label_last_gzipped_csv(tmp_path):
    pixels, labels = sample()
    path = write_csv(tmp_path / "mnist_5k.csv.gz", np.column_stack([pixels, labels]), gz=True)
    check(load_csv(path, label="last"), pixels, labels)
    check(load_dataset(path), pixels, labels)


def test_auto_uses_the_other_end_having_pixels_above_9(tmp_path):
    pixels, labels = sample()
    pixels[:, -1] = 200
    labels[:] = 3  # one distinct label value, but the last column is clearly pixels
    path = write_csv(tmp_path / "a.csv", np.column_stack([labels, pixels]))
    check(load_dataset(path), pixels, labels)


def test_auto_cannot_decide_a_symmetric_file(tmp_path):
    pixels, labels = sample(n=1)
    labels[:] = 0
    path = write_csv(tmp_path / "one.csv", np.column_stack([labels, pixels]))
    with pytest.raises(DataError, match="label='first' or 'last'"):
        load_dataset(path)
    check(load_csv(path, label="first"), pixels, labels)


def test_header_line_is_skipped(tmp_path):
    pixels, labels = sample()
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    path = write_csv(tmp_path / "h.csv", np.column_stack([labels, pixels]), header=header)
    check(load_csv(path, label="first"), pixels, labels)


def one_line(e):
    assert "\n" not in str(e.value)
    return str(e.value)


def test_ragged_row_names_file_and_line(tmp_path):
    pixels, labels = sample()
    rows = [list(r) for r in np.column_stack([labels, pixels])]
    rows[3] = rows[3][:-5]
    path = write_csv(tmp_path / "ragged.csv", rows)
    with pytest.raises(DataError) as e:
        load_dataset(path)
    msg = one_line(e)
    assert str(path) in msg and "line 4" in msg and "780 values" in msg


def test_wrong_pixel_count_everywhere(tmp_path):
    path = write_csv(tmp_path / "small.csv", [[1] + [0] * 100, [2] + [0] * 100])
    with pytest.raises(DataError, match=r"small\.csv: line 1: 101 values, expected 785"):
        load_dataset(path)


def test_label_out_of_range(tmp_path):
    pixels, labels = sample()
    labels[4] = 12
    path = write_csv(tmp_path / "bad_label.csv", np.column_stack([labels, pixels]))
    with pytest.raises(DataError) as e:
        load_csv(path, label="first")
    assert "bad_label.csv: line 5: label 12" in one_line(e)


def test_label_out_of_range_found_by_auto_too(tmp_path):
    pixels, labels = sample()
    labels[2] = 11
    path = write_csv(tmp_path / "bad_last.csv", np.column_stack([pixels, labels]))
    with pytest.raises(DataError, match="line 3: label 11"):
        load_dataset(path)


def test_pixel_out_of_range_and_non_numbers(tmp_path):
    pixels, labels = sample()
    pixels[1, 5] = 256
    path = write_csv(tmp_path / "hot.csv", np.column_stack([labels, pixels]))
    with pytest.raises(DataError, match="hot.csv: line 2: pixel"):
        load_csv(path, label="first")
    rows = [list(map(str, r)) for r in np.column_stack([labels, sample()[0]])]
    rows[2][7] = "x7"
    path = write_csv(tmp_path / "text.csv", rows)
    with pytest.raises(DataError, match="text.csv: line 3: a value is not a number"):
        load_csv(path, label="first")


def write_idx(path, array, magic_type=0x08, gz=False):
    header = bytes([0, 0, magic_type, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pair(tmp_path, gz):
    pixels, labels = sample()
    suffix = ".gz" if gz else ""
    img = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", pixels.reshape(-1, 28, 28), gz=gz)
    lab = write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz=gz)
    check(load_idx(img, lab), pixels, labels)
    check(load_dataset(img), pixels, labels)


def test_idx_directory_train_and_test(tmp_path):
    pixels, labels = sample(8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", pixels[:5].reshape(-1, 28, 28), gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:5], gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", pixels[5:].reshape(-1, 28, 28), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[5:], gz=True)
    check(load_idx_dir(tmp_path, "train"), pixels[:5], labels[:5])
    check(load_dataset(tmp_path, split="test"), pixels[5:], labels[5:])


def test_idx_malformed(tmp_path):
    pixels, labels = sample()
    img = write_idx(tmp_path / "i-images-idx3-ubyte", pixels.reshape(-1, 28, 28))
    lab = write_idx(tmp_path / "l", labels)
    short = tmp_path / "short"
    short.write_bytes(img.read_bytes()[:-10])
    with pytest.raises(DataError, match="short: byte 16: 4694 data bytes"):
        load_idx(short, lab)
    with pytest.raises(DataError, match="not an IDX file"):
        load_idx(write_csv(tmp_path / "c.csv", [[1, 2]]), lab)
    with pytest.raises(DataError, match="element type 0x0d"):
        load_idx(write_idx(tmp_path / "f", pixels.reshape(-1, 28, 28), magic_type=0x0D), lab)
    bad = labels.copy()
    bad[2] = 10
    with pytest.raises(DataError, match="item 2: label 10"):
        load_idx(img, write_idx(tmp_path / "bad", bad))
    with pytest.raises(DataError, match="5 labels for 6 images"):
        load_idx(img, write_idx(tmp_path / "few", labels[:5]))
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        load_idx_dir(tmp_path, "test")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")


def test_split_is_seeded_disjoint_and_complete():
    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    y = np.arange(50) % 10
    tr, va = train_val_split((x, y), 10, seed=1)
    tr2, va2 = train_val_split((x, y), 10, seed=1)
    assert len(tr.x) == 40 and len(va.x) == 10
    assert np.array_equal(va.x, va2.x) and np.array_equal(tr.y, tr2.y)
    assert sorted(np.concatenate([tr.x, va.x]).ravel().tolist()) == list(range(50))
    assert not np.array_equal(va.x, train_val_split((x, y), 10, seed=2)[1].x)
    assert len(train_val_split((x, y), 0.2, seed=1)[1].x) == 10
