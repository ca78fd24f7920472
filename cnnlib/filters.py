"""Classic image-processing kernels and a small filter routine.

Every kernel is a float64 array of shape (k, k). `apply` slides a kernel over an
image without flipping it (cross-correlation), the convention of every deep
learning framework; a kernel that is meant to be flipped (true convolution) can
be passed as ``kernel[::-1, ::-1]``.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_DIAGONAL = np.array(
    [
        [3, 1, 0, -1, -3],
        [1, 3, 1, 0, -1],
        [0, 1, 3, 1, 0],
        [-1, 0, 1, 3, 1],
        [-3, -1, 0, 1, 3],
    ],
    dtype=np.float64,
)

_GAUSSIAN5 = np.array(
    [
        [1, 4, 7, 4, 1],
        [4, 16, 26, 16, 4],
        [7, 26, 41, 26, 7],
        [4, 16, 26, 16, 4],
        [1, 4, 7, 4, 1],
    ],
    dtype=np.float64,
)


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _odd_size(k: int, name: str = "k") -> int:
    k = _positive_int(k, name)
    if k % 2 == 0:
        raise ValueError(f"{name} must be odd so the kernel has a centre, got {k}")
    return k


def mean(k: int = 5) -> np.ndarray:
    """Box (mean) blur.

    Inputs:
    - k: side of the square kernel, a positive int.

    Returns:
    - kernel: (k, k) array filled with 1 / k**2, so it sums to 1.
    """
    k = _positive_int(k, "k")
    return np.full((k, k), 1.0 / k**2)


def gaussian5() -> np.ndarray:
    """The classic integer 5x5 Gaussian approximation divided by its sum, 273.

    Returns:
    - kernel: (5, 5) array that sums to 1.
    """
    return _GAUSSIAN5 / 273.0


def gaussian(size: int, sigma: float) -> np.ndarray:
    """Sampled 2-D Gaussian exp(-(x^2 + y^2) / (2 sigma^2)), normalised to sum 1.

    Inputs:
    - size: odd side of the square kernel; the peak sits on the centre pixel.
    - sigma: standard deviation in pixels, > 0.

    Returns:
    - kernel: (size, size) array that sums to 1.
    """
    size = _odd_size(size, "size")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    r = np.arange(size) - size // 2
    # The 2-D Gaussian is separable, so the outer product of two 1-D profiles is exact.
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def sharpen() -> np.ndarray:
    """Sharpen: identity plus a negative Laplacian, (3, 3), sums to 1."""
    return np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)


def sobel_x() -> np.ndarray:
    """Sobel horizontal derivative, (3, 3): positive where intensity grows to the right."""
    return np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def sobel_y() -> np.ndarray:
    """Sobel vertical derivative, (3, 3): positive where intensity grows downwards."""
    return np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)


def emboss() -> np.ndarray:
    """Emboss, (3, 3): a diagonal derivative plus the identity, sums to 1."""
    return np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)


def identity(k: int = 3) -> np.ndarray:
    """Kernel that leaves an image unchanged under 'same' filtering.

    Inputs:
    - k: odd side of the square kernel.

    Returns:
    - kernel: (k, k) zeros with a 1 in the centre.
    """
    k = _odd_size(k)
    kernel = np.zeros((k, k))
    kernel[k // 2, k // 2] = 1.0
    return kernel


def diagonal_edge_kernel() -> np.ndarray:
    """Main-diagonal line detector of the synthetic 6/9 example, divided by its sum (13).

    Returns:
    - kernel: (5, 5) array; 3/13 on the main diagonal, falling to -3/13 in the
      off corners, so it responds to strokes running top-left to bottom-right.
    """
    return _DIAGONAL / _DIAGONAL.sum()


def rotated_diagonal_edge_kernel() -> np.ndarray:
    """`diagonal_edge_kernel` rotated by 90 degrees (np.rot90), divided by its sum (13).

    Returns:
    - kernel: (5, 5) array that responds to strokes running bottom-left to top-right.
    """
    rotated = np.rot90(_DIAGONAL)
    return rotated / rotated.sum()


def _pad_widths(padding: str | int, kh: int, kw: int) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            # An even kernel needs an odd total padding; like PyTorch, the extra pixel
            # goes to the bottom/right.
            return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
        raise ValueError(f"padding must be 'same', 'valid' or an int >= 0, got {padding!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)):
        raise TypeError(f"padding must be 'same', 'valid' or an int, got {type(padding).__name__}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return (int(padding), int(padding)), (int(padding), int(padding))


def apply(image: np.ndarray, kernel: np.ndarray, padding: str | int = "same") -> np.ndarray:
    """Filter an image with a 2-D kernel, each channel on its own (cross-correlation).

    out[i, j, c] = sum_{a, b} padded[i + a, j + b, c] * kernel[a, b], with zero padding.
    For one channel this equals ``cnnlib.functional.conv2d(image[None, None],
    kernel[None, None], padding=padding)[0, 0]``.

    Inputs:
    - image: (H, W) grey or (H, W, C) colour image; integer images are filtered as float64.
    - kernel: (kh, kw) filter, applied as given (not flipped).
    - padding: 'same' (output H x W; the extra pixel of an even kernel at the
      bottom/right), 'valid' (no padding) or an int p of zeros on every side.

    Returns:
    - out: (H', W') or (H', W', C) array, H' = H + pad_top + pad_bottom - kh + 1
      and likewise for W'.
    """
    image = np.asarray(image)
    kernel = np.asarray(kernel)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ValueError(f"kernel must be a non-empty 2-D array, got shape {kernel.shape}")
    kh, kw = kernel.shape
    (top, bottom), (left, right) = _pad_widths(padding, kh, kw)
    height, width = image.shape[:2]
    if height + top + bottom < kh or width + left + right < kw:
        raise ValueError(
            f"kernel {kernel.shape} does not fit image {image.shape} with padding {padding!r}"
        )
    dtype = np.result_type(image, kernel)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64

    planes = image[:, :, None] if image.ndim == 2 else image
    padded = np.pad(planes.astype(dtype, copy=False), ((top, bottom), (left, right), (0, 0)))
    # (H', W', C, kh, kw) view: no copy, every window is one output pixel's input.
    windows = sliding_window_view(padded, (kh, kw), axis=(0, 1))
    out = np.einsum("ijcab,ab->ijc", windows, kernel.astype(dtype, copy=False))
    return out[:, :, 0] if image.ndim == 2 else out
