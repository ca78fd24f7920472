"""Sliding windows without a loop over output positions.

A convolution or pooling window visits ``prod(out)`` positions but has only ``prod(kernel)``
offsets. For a fixed offset the input pixels it touches, across all positions, form one strided
slice of the padded input. So we loop over the few kernel offsets and copy whole slices
(the idea of Chainer's ``im2col``), and ``col2im``, the adjoint, adds them back.

Layouts: inputs are ``(N, C, *spatial)``; columns are ``(C, *kernel, N, *grid)``, which reshapes
without copying to ``(C * prod(kernel), N * prod(grid))``, the right operand of one GEMM.

The grid. With stride 1 there is a cheaper copy: if window positions are laid out on the padded
input's own grid, ``(out[0], *padded[1:])`` instead of ``out``, then one offset's pixels are a
single contiguous run of the flattened padded input, one memcpy per (channel, sample). The
price is a few extra positions per row (windows that wrap into the next row) whose values are
garbage; :func:`from_grid` crops them, and :func:`to_grid` fills them with zeros where a
gradient flows back, so they contribute nothing, as long as what those zeros multiply is finite:
0 * inf is NaN, so with an inf in ``x`` or the weight some gradient entries (and a transposed
convolution's outputs) that PyTorch gives finite come out NaN here.
"""
from __future__ import annotations

import itertools
from math import prod
from typing import Iterator, Sequence

import numpy as np

# Columns are built a slice of the batch at a time, so memory does not grow with the batch. A
# slice's columns and product hold at most the larger of the call's input and output, clamped
# to SLICE_BYTES, so a convolution peaks near its input and output plus the larger of the two:
# at most twice them. Measured side by side: a depthwise forward ran 2.6x faster in slices of
# 1 MiB (in cache); the larger of input and output rather than half their sum took 0.97x the
# time forward and 0.97-0.99x backward on narrow layers (32->64 14x14 at N=64, 32->128 16x16
# at N=32, which now slice less finely); their whole sum broke the memory bound when the input
# is much larger than the output (a strided layer) and in a depthwise one.
SLICE_BYTES = (1 << 20, 4 << 20)


def even_batches(n: int, sample_bytes: int, budget: int) -> list[slice]:
    """Slices of a batch of ``n`` that fit in ``budget`` bytes, as few as can and of near-equal
    size (64 samples in two slices of 32, not 62 and a 2-sample tail with its inefficient GEMM)."""
    count = -(-n // max(1, budget // sample_bytes))
    return [slice(i * n // count, (i + 1) * n // count) for i in range(count)]


def batches(n: int, sample_bytes: int, *arrays: np.ndarray) -> list[slice]:
    """:func:`even_batches` with the bytes of the largest of ``arrays`` (the call's input and
    output) as the budget, clamped to SLICE_BYTES."""
    lowest, highest = SLICE_BYTES
    return even_batches(n, sample_bytes, min(max(max(a.nbytes for a in arrays), lowest), highest))


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


def padded_size(spatial: Sequence[int], before: Sequence[int], kernel: Sequence[int],
                stride: Sequence[int], dilation: Sequence[int], out: Sequence[int]) -> tuple[int, ...]:
    """The spatial size of the input once :func:`pad_for_windows` has padded it."""
    after = padding_after(spatial, before, kernel, stride, dilation, out)
    return tuple(b + n + a for b, n, a in zip(before, spatial, after))


def pad_for_windows(x: np.ndarray, before: Sequence[int], kernel: Sequence[int],
                    stride: Sequence[int], dilation: Sequence[int], out: Sequence[int],
                    value: float = 0.0) -> np.ndarray:
    """Pad the spatial axes of ``x`` (N, C, *spatial) with ``value``, by ``before`` and by
    :func:`padding_after`; returns ``x`` itself when no padding is needed."""
    after = padding_after(x.shape[2:], before, kernel, stride, dilation, out)
    if not any(before) and not any(after):
        return x
    return np.pad(x, [(0, 0), (0, 0), *zip(before, after)], constant_values=value)


def grid(padded: Sequence[int], stride: Sequence[int], out: Sequence[int]) -> tuple[int, ...]:
    """Where the columns lay out window positions: the padded grid for stride 1, else ``out``."""
    return (out[0], *padded[1:]) if all(s == 1 for s in stride) else tuple(out)


def to_grid(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Embed ``a`` (..., *out) in zeros of shape (..., *shape)."""
    nd = len(shape)
    if a.shape[-nd:] == tuple(shape):
        return a
    g = np.zeros((*a.shape[:-nd], *shape), dtype=a.dtype)
    g[(..., *(slice(0, n) for n in a.shape[-nd:]))] = a
    return g


def from_grid(a: np.ndarray, out: Sequence[int]) -> np.ndarray:
    """The ``out`` corner of ``a`` (..., *grid): a view that drops the wrapped positions."""
    return a[(..., *(slice(0, n) for n in out))]


def offset_runs(padded, kernel, dilation, length):
    """Per kernel offset on the flat padded input: (offset, start, how much of the run exists)."""
    steps = [prod(padded[i + 1:]) for i in range(len(padded))]
    total = prod(padded)
    for offset in itertools.product(*(range(k) for k in kernel)):
        start = sum(o * d * step for o, d, step in zip(offset, dilation, steps))
        # The last row's run may overhang the end; those positions are wrapped ones, cropped later.
        yield offset, start, min(length, total - start)


def im2col(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Columns of the padded input ``xp`` (N, C, *padded): returns ``(C, *kernel, N, *grid)``."""
    n, c, padded = xp.shape[0], xp.shape[1], xp.shape[2:]
    g = grid(padded, stride, out)
    col = np.empty((c, *kernel, n, *g), dtype=xp.dtype)
    source = xp.swapaxes(0, 1)  # (C, N, *padded), so each copy fills a contiguous block of col
    if g == tuple(out):
        for offset, window in windows(kernel, stride, dilation, out):
            col[(slice(None), *offset)] = source[(slice(None), slice(None), *window)]
        return col
    flat, runs = source.reshape(c, n, -1), col.reshape(c, *kernel, n, -1)
    for offset, start, length in offset_runs(padded, kernel, dilation, runs.shape[-1]):
        runs[(slice(None), *offset, slice(None), slice(0, length))] = flat[:, :, start:start + length]
        runs[(slice(None), *offset, slice(None), slice(length, None))] = 0  # keep wrapped values finite
    return col


def col2im(col: np.ndarray, padded: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add ``col`` (C, *kernel, N, *grid) into an array of
    shape ``(N, C, *padded)``. Overlapping windows add up, which is what a gradient needs; on
    the stride-1 grid the wrapped positions of ``col`` must hold zeros (see :func:`to_grid`)."""
    nd = len(padded)
    c, kernel, n = col.shape[0], col.shape[1:1 + nd], col.shape[1 + nd]
    target = np.zeros((c, n, *padded), dtype=col.dtype)
    if grid(padded, stride, out) == tuple(out):
        for offset, window in windows(kernel, stride, dilation, out):
            # Within one offset the slice positions are distinct, so += on a strided view is exact.
            target[(slice(None), slice(None), *window)] += col[(slice(None), *offset)]
    else:
        flat, runs = target.reshape(c, n, -1), col.reshape(c, *kernel, n, -1)
        for offset, start, length in offset_runs(padded, kernel, dilation, runs.shape[-1]):
            flat[:, :, start:start + length] += runs[(slice(None), *offset, slice(None), slice(0, length))]
    return target.swapaxes(0, 1)
