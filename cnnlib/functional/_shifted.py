"""Stride-1 convolution from shifted views, with few columns (conv.py chooses when).

With stride 1 every kernel offset reads the flat padded input shifted by a constant, so one
offset's product is a GEMM on a view, no columns needed. Copying the input once per tap of the
kernel's last axis (k_W copies, not im2col's prod(kernel)) makes each of the remaining GEMMs
k_W times deeper. The window positions live on the padded grid (see :mod:`cnnlib.im2col`).
"""
from __future__ import annotations

from math import prod

import numpy as np

from ..im2col import batches, even_batches, from_grid, grid, offset_runs, pad_for_windows, to_grid

SHIFTED_BYTES = 1 << 20  # the partial sums of a slice of the batch, kept in cache


def tap_stack(x, kernel, before, dilation, groups, out):
    """The stride-1 layout both shifted kernels read. Returns the grid, the flat start of each
    offset of the kernel's outer axes (all but the last), and ``stack(batch)``: that slice of
    the flat padded input copied once per tap of the last axis, (m, g, k_W * C_in/g, length)."""
    ones, taps, step = (1,) * len(kernel), kernel[-1], dilation[-1]
    # One spare row at the end: the last offsets' runs overhang the last row by a few positions.
    xp = pad_for_windows(x, before, kernel, ones, dilation, (out[0] + 1, *out[1:]))
    g = grid(xp.shape[2:], ones, out)
    flat = xp.reshape(x.shape[0], groups, x.shape[1] // groups, prod(xp.shape[2:]))
    length = flat.shape[-1] - step * (taps - 1)
    starts = [start for _, start, _ in offset_runs(xp.shape[2:], (*kernel[:-1], 1), dilation, prod(g))]

    def stack(batch):
        copies = np.stack([flat[batch, :, :, j * step:j * step + length] for j in range(taps)], 2)
        return copies.reshape(*copies.shape[:2], -1, length)
    return g, starts, stack


def correlate(x, weight, before, dilation, groups, out, bias=None):
    """conv.py's ``_correlate`` for stride 1 with few columns: per slice of the batch, the input is
    copied once per tap of the last kernel axis (k_W copies, not im2col's k^2), and every other
    kernel offset is one GEMM, of inner size k_W * C_in/g, on a shifted view of that stack; the
    products are summed in cache, the bias joining the first of them."""
    n, c_in, c_out, taps = x.shape[0], x.shape[1], weight.shape[0], weight.shape[-1]
    g, starts, stack = tap_stack(x, weight.shape[2:], before, dilation, groups, out)
    # (C_out, C_in/g, *outer, k_W) -> (outer offsets, g, C_out/g, k_W * C_in/g), as stacked
    w = weight.reshape(groups, c_out // groups, c_in // groups, -1, taps)
    w = w.transpose(3, 0, 1, 4, 2).reshape(len(starts), groups, c_out // groups, -1).copy()
    y = np.empty((n, c_out, *out), dtype=x.dtype)
    first = 0 if bias is None else bias.reshape(groups, -1, 1)
    for batch in even_batches(n, c_out * prod(g) * x.itemsize, SHIFTED_BYTES):
        taps_b, acc, part = stack(batch), None, None
        for w_outer, start in zip(w, starts):
            part = np.matmul(w_outer, taps_b[..., start:start + prod(g)], out=part)
            acc = np.add(part, first) if acc is None else np.add(acc, part, out=acc)
        y[batch] = from_grid(acc.reshape(-1, c_out, *g), out)
        del taps_b, acc, part  # else they live on while the next slice allocates its own
    return y


def weight_grad(x, dy, kernel, before, dilation, groups):
    """conv.py's ``_weight_grad`` for stride 1 with few columns: per offset of the kernel's outer
    axes, dy times a shifted view of the input's tap stack (see :func:`tap_stack`), one GEMM
    per sample, summed over the batch."""
    n, c_in, out, c_out, taps = x.shape[0], x.shape[1], dy.shape[2:], dy.shape[1], kernel[-1]
    g, starts, stack = tap_stack(x, kernel, before, dilation, groups, out)
    dy_g = to_grid(dy, g).reshape(n, groups, c_out // groups, prod(g))  # zeros at wrapped positions
    dw = np.zeros((len(starts), groups, c_out // groups, taps * c_in // groups), dtype=x.dtype)
    for batch in batches(n, taps * c_in * prod(g) * x.itemsize, x, dy):
        taps_b = stack(batch)
        for dw_outer, start in zip(dw, starts):
            dw_outer += np.matmul(dy_g[batch], taps_b[..., start:start + prod(g)].swapaxes(-1, -2)).sum(axis=0)
        del taps_b  # else it lives on while the next slice allocates its own
    # (outer offsets, g, C_out/g, k_W, C_in/g) -> (C_out, C_in/g, *outer, k_W)
    dw = dw.reshape(len(starts), groups, c_out // groups, taps, c_in // groups)
    return dw.transpose(1, 2, 4, 0, 3).reshape(c_out, c_in // groups, *kernel)
