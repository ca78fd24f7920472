"""Convolution one sample at a time, for short inner products (conv.py chooses when).

When a product sums only a few numbers (C_in/g * prod(kernel), 25 for one input channel and a
5x5 kernel), a GEMM over the whole batch is bound by moving its operands, not by arithmetic. So
each sample gets its own small product, read from or written to (N, C, ...) directly, and the
columns hold only real window positions (no grid, no reordering copy).
"""
from __future__ import annotations

from math import prod

import numpy as np

from ..im2col import batches, pad_for_windows, padded_size, windows


def sample_columns(xp, kernel, stride, dilation, groups, out, extra=0):
    """Columns of a slice of the padded input, xp (m, C_in, *padded), one block per sample and
    group: (m, g, C_in/g * prod(kernel) + extra, prod(out)); the ``extra`` rows are the caller's."""
    m, c_in = xp.shape[:2]
    inner = c_in // groups * prod(kernel)
    col = np.empty((m, groups, inner + extra, prod(out)), dtype=xp.dtype)
    taps = col[:, :, :inner].reshape(m, groups, c_in // groups, *kernel, *out, copy=False)
    source = xp.reshape(m, groups, c_in // groups, *xp.shape[2:])
    for offset, window in windows(kernel, stride, dilation, out):
        taps[(slice(None), slice(None), slice(None), *offset)] = source[(..., *window)]
    return col


def correlate(x, weight, bias, stride, before, dilation, groups, out):
    """conv.py's ``_correlate`` for short inner products: one product per sample and group, of the
    weight and that sample's columns (the last row ones when there is a bias, which then rides
    along as one more weight column), written straight into (N, C, ...)."""
    kernel, n, c_in, c_out = weight.shape[2:], x.shape[0], x.shape[1], weight.shape[0]
    xp = pad_for_windows(x, before, kernel, stride, dilation, out)
    w = weight.reshape(groups, c_out // groups, -1)
    inner = w.shape[2]
    if bias is not None:
        w = np.concatenate([w, bias.reshape(groups, -1, 1)], axis=2)
    y = np.empty((n, c_out, prod(out)), dtype=x.dtype)
    for batch in batches(n, (c_in * prod(kernel) + groups) * prod(out) * x.itemsize, x, y):
        col = sample_columns(xp[batch], kernel, stride, dilation, groups, out, w.shape[2] - inner)
        col[:, :, inner:] = 1
        np.matmul(w, col, out=y[batch].reshape(len(col), groups, c_out // groups, -1))
        del col  # else it lives on while the next slice allocates its own
    return y.reshape(n, c_out, *out)


def transpose(y, weight, stride, before, dilation, groups, size):
    """conv.py's ``_transpose`` for short inner products: per sample and group, the weight transposed
    times that sample's block of y, read straight from (N, C, ...); the columns it makes are
    added back offset by offset, as :func:`cnnlib.im2col.col2im` does."""
    kernel, n, out, c_out = weight.shape[2:], y.shape[0], y.shape[2:], weight.shape[0]
    c_in = weight.shape[1] * groups
    w = weight.reshape(groups, c_out // groups, -1).transpose(0, 2, 1)
    padded = padded_size(size, before, kernel, stride, dilation, out)
    crop = tuple(slice(b, b + m) for b, m in zip(before, size))
    y_s = y.reshape(n, groups, c_out // groups, prod(out))
    x = np.empty((n, c_in, *size), dtype=y.dtype)
    for batch in batches(n, (c_in * prod(kernel) + c_out) * prod(out) * y.itemsize, y, x):
        taps = np.matmul(w, y_s[batch]).reshape(-1, groups, c_in // groups, *kernel, *out)
        target = np.zeros((len(taps), groups, c_in // groups, *padded), dtype=y.dtype)
        for offset, window in windows(kernel, stride, dilation, out):
            target[(..., *window)] += taps[(slice(None), slice(None), slice(None), *offset)]
        x[batch] = target.reshape(len(taps), c_in, *padded)[(slice(None), slice(None), *crop)]
        del taps, target  # else they live on while the next slice allocates its own
    return x


def weight_grad(x, dy, kernel, stride, before, dilation, groups):
    """conv.py's ``_weight_grad`` for short inner products: per sample and group, dy's block, read
    straight from (N, C, ...), times that sample's columns transposed, summed over the batch."""
    n, c_in, c_out, out = x.shape[0], x.shape[1], dy.shape[1], dy.shape[2:]
    xp = pad_for_windows(x, before, kernel, stride, dilation, out)
    dy_s = dy.reshape(n, groups, c_out // groups, prod(out))
    dw = np.zeros((groups, c_out // groups, c_in // groups * prod(kernel)), dtype=x.dtype)
    for batch in batches(n, c_in * prod(kernel) * prod(out) * x.itemsize, x, dy):
        col = sample_columns(xp[batch], kernel, stride, dilation, groups, out)
        dw += np.matmul(dy_s[batch], col.swapaxes(-1, -2)).sum(axis=0)
        del col  # else it lives on while the next slice allocates its own
    return dw.reshape(c_out, c_in // groups, *kernel)
