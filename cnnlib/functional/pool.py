"""Max, average and global average pooling over (N, C, H, W), with PyTorch's semantics.

Like convolution, pooling loops over the kernel offsets only (see :mod:`cnnlib.im2col`), but it
needs no columns: the max (or the sum) is folded in one strided slice at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._params import IntOrTuple, as_array, as_tuple, check_gradient, window_count
from ..im2col import pad_for_windows, padded_size, windows


@dataclass(frozen=True)
class _Pool:
    """A checked pooling problem."""
    x: np.ndarray
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    out: tuple[int, int]

    def slices(self):
        return windows(self.kernel, self.stride, self.dilation, self.out)

    def corners(self) -> list[np.ndarray]:
        """Per spatial axis, where each window starts in the unpadded input (negative: padding)."""
        return [np.arange(o) * s - pad for o, s, pad in zip(self.out, self.stride, self.padding)]

    def first_real(self) -> list[np.ndarray]:
        """Per spatial axis, how far each window's first tap inside the input lies from its corner."""
        return [np.maximum(0, -(c // d)) * d for c, d in zip(self.corners(), self.dilation)]

    def padded(self, x, value):
        return pad_for_windows(x, self.padding, self.kernel, self.stride, self.dilation, self.out, value)

    def zeros_padded(self):
        """A zero gradient buffer the size of the padded input."""
        size = padded_size(self.x.shape[2:], self.padding, self.kernel, self.stride, self.dilation, self.out)
        return np.zeros((*self.x.shape[:2], *size), dtype=self.x.dtype)

    def crop(self, xp):
        """Drop the padding from a padded-size gradient."""
        (ph, pw), (h, w) = self.padding, self.x.shape[2:]
        return np.ascontiguousarray(xp[:, :, ph:ph + h, pw:pw + w])


def _pool(op, x, kernel_size, stride, padding, dilation, ceil_mode) -> _Pool:
    x = as_array(x, "x", op, 4, "(N, C, H, W)")
    if 0 in x.shape[1:]:
        raise ValueError(f"{op}: x of shape {x.shape} has an empty axis (only the batch may be empty)")
    kernel = as_tuple(kernel_size, 2, "kernel_size", op, minimum=1)
    stride = kernel if stride is None else as_tuple(stride, 2, "stride", op, minimum=1)
    padding = as_tuple(padding, 2, "padding", op, minimum=0)
    dilation = as_tuple(dilation, 2, "dilation", op, minimum=1)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    out = tuple(window_count(n, (p, p), k, s, d, ceil_mode)
                for n, p, k, s, d in zip(x.shape[2:], padding, kernel, stride, dilation))
    if min(out) < 1:
        raise ValueError(f"{op}: kernel {kernel} with dilation {dilation} is larger than the "
                         f"padded input (x shape {x.shape}, padding {padding})")
    p = _Pool(x, kernel, stride, padding, dilation, out)
    # A dilated window can step over a small input. PyTorch then returns -inf and the index of
    # a pixel outside the window (or outside the plane, where its backward writes past the
    # input); refuse instead.
    for n, k, d, corner, first in zip(x.shape[2:], kernel, dilation, p.corners(), p.first_real()):
        if np.any((first > d * (k - 1)) | (corner + first >= n)):
            raise ValueError(f"{op}: with kernel {kernel}, dilation {dilation} and padding {padding}, "
                             f"a window holds only padding (x shape {x.shape})")
    return p


def _window_max(p: _Pool, xp: np.ndarray) -> np.ndarray:
    """Max over each window of the (-inf padded) input; np.maximum propagates NaN, as PyTorch does."""
    y = None
    for _, (sh, sw) in p.slices():
        y = xp[:, :, sh, sw].copy() if y is None else np.maximum(y, xp[:, :, sh, sw], out=y)
    return y


def _window_argmax(p: _Pool, nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Max over each window and where it was found, as a flat index into the (H, W) plane.

    PyTorch's CPU kernel, run for all windows at once: start at each window's first real pixel
    with a running maximum of -inf, scan the taps in row-major order and move on when a value is
    larger or is NaN. So the winner is the first pixel equal to the maximum, or, in a window
    holding NaN, its last NaN; the -inf padding is never larger, so it never wins. Testing for
    NaN costs two more passes per tap, so the scan runs again with ``nan`` only if it found one.
    """
    xp = p.padded(p.x, -np.inf)
    width = p.x.shape[3]
    corners, first = p.corners(), p.first_real()
    taps = [((i * p.dilation[0] * width + j * p.dilation[1]), window) for (i, j), window in p.slices()]
    shape = (*p.x.shape[:2], *p.out)
    # Each window's winner as its offset from the window's corner, in the flat plane; in int8
    # where the offsets fit (2x2 windows on planes up to 126 wide), 3x faster than int32.
    delta = np.empty(shape, dtype=np.int8 if taps[-1][0] < 128 else np.int32)
    delta[...] = first[0][:, None] * width + first[1]
    y, tap = np.full(shape, -np.inf, dtype=p.x.dtype), np.empty(shape, dtype=p.x.dtype)
    for d, (sh, sw) in taps:
        # One strided read per tap; the passes below then run on contiguous memory, where each
        # costs a fifth of a pass over the strided slice (64x32x28x28, 2x2 windows).
        np.copyto(tap, xp[:, :, sh, sw])
        moves = tap > y
        if nan:
            moves |= np.isnan(tap)
        np.maximum(y, tap, out=y)  # a NaN, once met, stays the maximum
        # Selecting with arithmetic is branch-free: ~30x faster than np.where.
        delta += (delta.dtype.type(d) - delta) * moves
    if not nan and np.isnan(y).any():
        return _window_argmax(p, True)
    return y, (corners[0][:, None] * width + corners[1]) + delta


def max_pool2d(x: np.ndarray, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Inputs:
    - x: input of shape (N, C, H, W).
    - kernel_size: window size, an int or (kH, kW).
    - stride: step between windows; defaults to ``kernel_size``.
    - padding: implicit minus-infinity padding on both sides, at most half the kernel.
    - dilation: spacing between window taps.
    - ceil_mode: round the output size up, keeping a last partial window that starts inside
      the input or the left padding.
    - return_indices: also return where each maximum sits (what the backward needs).

    Returns:
    - y of shape (N, C, H_out, W_out); with ``return_indices``, ``(y, indices)`` where
      ``indices`` (N, C, H_out, W_out), int64, is the flat position ``h * W + w`` of each
      window's (first) maximum in its (H, W) plane, as PyTorch returns it.
    """
    p = _pool("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    if return_indices:
        return _window_argmax(p)
    return _window_max(p, p.padded(p.x, -np.inf))


def max_pool2d_backward(dy: np.ndarray, x: np.ndarray, kernel_size: IntOrTuple,
                        stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                        dilation: IntOrTuple = 1, ceil_mode: bool = False,
                        indices: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each window's ``dy`` goes to its (first) maximum.

    Inputs:
    - dy: upstream gradient, shape (N, C, H_out, W_out).
    - x, kernel_size, stride, padding, dilation, ceil_mode: as passed to the forward.
    - indices: the forward's ``return_indices`` output, (N, C, H_out, W_out); found again
      from ``x`` when not given.

    Returns:
    - dx of shape (N, C, H, W). Overlapping windows that share a maximum add their gradients.
    """
    op = "max_pool2d_backward"
    p = _pool(op, x, kernel_size, stride, padding, dilation, ceil_mode)
    dy = check_gradient(op, dy, (*p.x.shape[:2], *p.out), p.x.dtype)
    n, c, h, w = p.x.shape
    if indices is None:
        indices = _window_argmax(p)[1]
    else:
        indices = np.asarray(indices)
        if indices.shape != dy.shape or indices.dtype.kind not in "iu":
            raise ValueError(f"{op}: indices must be integers of the output's shape {dy.shape}, "
                             f"got {indices.dtype} {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= h * w):
            raise ValueError(f"{op}: indices must lie in [0, {h * w}) for an input plane of {h}x{w}")
    # Windows may share a maximum, so the scatter must add (np.add.at), not assign.
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)
    dx = np.zeros(n * c * h * w, dtype=p.x.dtype)
    np.add.at(dx, (indices + planes).ravel(), dy.ravel())
    return dx.reshape(p.x.shape)


def _divisor(p: _Pool, count_include_pad: bool) -> np.ndarray:
    """Per-window divisor (H_out, W_out): PyTorch divides by the window clipped to the padded
    input, or, without ``count_include_pad``, by the number of real pixels in it."""
    counts = []
    for n, k, s, pad, out in zip(p.x.shape[2:], p.kernel, p.stride, p.padding, p.out):
        start = np.arange(out) * s - pad
        end = np.minimum(start + k, n + pad)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    return np.multiply.outer(*counts).astype(p.x.dtype)


def avg_pool2d(x: np.ndarray, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Inputs:
    - x: input of shape (N, C, H, W).
    - kernel_size, stride, ceil_mode: as in :func:`max_pool2d` (no dilation here).
    - padding: implicit zero padding on both sides, at most half the kernel.
    - count_include_pad: whether padded zeros count in the divisor.

    Returns:
    - y of shape (N, C, H_out, W_out).
    """
    p = _pool("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    xp = p.padded(p.x, 0)
    total = np.zeros((*p.x.shape[:2], *p.out), dtype=p.x.dtype)
    for _, (sh, sw) in p.slices():
        total += xp[:, :, sh, sw]
    return total / _divisor(p, count_include_pad)


def avg_pool2d_backward(dy: np.ndarray, x: np.ndarray, kernel_size: IntOrTuple,
                        stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window spreads ``dy / divisor`` over its pixels.

    Inputs:
    - dy: upstream gradient, shape (N, C, H_out, W_out).
    - x, kernel_size, stride, padding, ceil_mode, count_include_pad: as passed to the forward.

    Returns:
    - dx of shape (N, C, H, W).
    """
    p = _pool("avg_pool2d_backward", x, kernel_size, stride, padding, 1, ceil_mode)
    dy = check_gradient("avg_pool2d_backward", dy, (*p.x.shape[:2], *p.out), p.x.dtype)
    share = dy / _divisor(p, count_include_pad)
    dxp = p.zeros_padded()
    for _, (sh, sw) in p.slices():
        dxp[:, :, sh, sw] += share
    return p.crop(dxp)


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean over the spatial axes: x (N, C, H, W) -> (N, C)."""
    x = as_array(x, "x", "global_avg_pool2d", 4, "(N, C, H, W)")
    return x.mean(axis=(2, 3))


def global_avg_pool2d_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`global_avg_pool2d`: dy (N, C) spread evenly -> dx (N, C, H, W)."""
    x = as_array(x, "x", "global_avg_pool2d_backward", 4, "(N, C, H, W)")
    dy = check_gradient("global_avg_pool2d_backward", dy, x.shape[:2], x.dtype)
    h, w = x.shape[2:]
    return np.broadcast_to(dy[:, :, None, None] / (h * w), x.shape).copy()
