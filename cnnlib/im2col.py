"""Sliding windows without a loop over output positions.

A convolution or pooling window visits ``prod(out)`` positions but has only ``prod(kernel)``
offsets. For a fixed offset the input pixels it touches, across all positions, form one strided
slice of the padded input. So we loop over the few kernel offsets and copy whole slices
(the idea of Chainer's ``im2col``), and ``col2im``, the adjoint, adds them back.

Layouts: inputs are ``(N, C, *spatial)``; columns are ``(C, *kernel, N, *out)``, which reshapes
without copying to ``(C * prod(kernel), N * prod(out))``, the right operand of one GEMM.
"""
from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np


def windows(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
            out: Sequence[int]) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Yield ``(offset, slices)`` for every kernel offset.

    ``slices`` index the spatial axes of the padded input: they pick, for every one of the
    ``out`` window positions, the pixel that sits at ``offset`` inside the window.
    """
    for offset in itertools.product(*(range(k) for k in kernel)):
        yield offset, tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                            for o, d, s, n in zip(offset, dilation, stride, out))


def padding_after(spatial: Sequence[int], before: Sequence[int], kernel: Sequence[int],
                  stride: Sequence[int], dilation: Sequence[int], out: Sequence[int]) -> list[int]:
    """How far the ``out`` windows reach past the end of the input padded by ``before``: possibly
    nothing (the tail is never read), possibly more than ``before`` (ceil mode)."""
    reach = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(out, stride, dilation, kernel)]
    return [max(0, r - b - size) for r, b, size in zip(reach, before, spatial)]


def pad_for_windows(x: np.ndarray, before: Sequence[int], kernel: Sequence[int],
                    stride: Sequence[int], dilation: Sequence[int], out: Sequence[int],
                    value: float = 0.0) -> np.ndarray:
    """Pad the spatial axes of ``x`` (N, C, *spatial) with ``value``, by ``before`` and by
    :func:`padding_after`; returns ``x`` itself when no padding is needed."""
    after = padding_after(x.shape[2:], before, kernel, stride, dilation, out)
    if not any(before) and not any(after):
        return x
    return np.pad(x, [(0, 0), (0, 0), *zip(before, after)], constant_values=value)


def im2col(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Columns of the padded input ``xp`` (N, C, *padded): returns ``(C, *kernel, N, *out)``."""
    n, c = xp.shape[:2]
    col = np.empty((c, *kernel, n, *out), dtype=xp.dtype)
    source = xp.swapaxes(0, 1)  # (C, N, *padded), so each copy fills a contiguous block of col
    for offset, window in windows(kernel, stride, dilation, out):
        col[(slice(None), *offset)] = source[(slice(None), slice(None), *window)]
    return col


def col2im(col: np.ndarray, padded: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int]) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add ``col`` (C, *kernel, N, *out) into an array of
    shape ``(N, C, *padded)``. Overlapping windows add up, which is what a gradient needs."""
    nd = len(padded)
    c, kernel, n, out = col.shape[0], col.shape[1:1 + nd], col.shape[1 + nd], col.shape[2 + nd:]
    target = np.zeros((c, n, *padded), dtype=col.dtype)
    for offset, window in windows(kernel, stride, dilation, out):
        # Within one offset the slice positions are distinct, so += on a strided view is exact.
        target[(slice(None), slice(None), *window)] += col[(slice(None), *offset)]
    return target.swapaxes(0, 1)
