"""Naive loop implementations: one output number at a time, exactly as the formulas read.

They are slow on purpose. Chapters show them, and tests use them as an independent oracle for
the fast paths in :mod:`cnnlib.functional`, which share none of this code.
"""
from __future__ import annotations

import numpy as np


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    # In ceil mode the last window must start inside the input or the left padding.
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def conv2d_naive(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """y[n, o, i, j] = b[o] + sum over c, u, v of w[o, c, u, v] * xpad[n, g*C_g + c, i*s + u*d, j*s + v*d].

    x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out,) or None; integer
    ``padding`` only. Returns (N, C_out, H_out, W_out).
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n_batch, c_in, h, w = x.shape
    c_out, c_group, kh, kw = weight.shape
    out_per_group = c_out // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = _out_size(h, kh, sh, ph, dh), _out_size(w, kw, sw, pw, dw)
    y = np.zeros((n_batch, c_out, ho, wo), dtype=np.result_type(x, weight))
    for n in range(n_batch):
        for o in range(c_out):
            first = (o // out_per_group) * c_group  # first input channel of o's group
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, first:first + c_group,
                                i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    y[n, o, i, j] = np.sum(window * weight[o]) + (0 if bias is None else bias[o])
    return y


def _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Yield (n, c, i, j, window) where window holds the real (unpadded) pixels, and its bounds."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel_size), _pair(padding), _pair(dilation)
    sh, sw = _pair(kernel_size if stride is None else stride)
    n_batch, channels, h, w = x.shape
    ho, wo = _out_size(h, kh, sh, ph, dh, ceil_mode), _out_size(w, kw, sw, pw, dw, ceil_mode)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(ho):
                for j in range(wo):
                    rows = [r for r in range(i * sh - ph, i * sh - ph + dh * (kh - 1) + 1, dh) if 0 <= r < h]
                    cols = [q for q in range(j * sw - pw, j * sw - pw + dw * (kw - 1) + 1, dw) if 0 <= q < w]
                    yield n, c, i, j, (ho, wo), rows, cols


def max_pool2d_naive(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> np.ndarray:
    """y[n, c, i, j] = max of the real pixels in window (i, j); padding never wins.
    x (N, C, H, W) -> (N, C, H_out, W_out)."""
    y = None
    for n, c, i, j, shape, rows, cols in _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode):
        if y is None:
            y = np.empty(x.shape[:2] + shape, dtype=x.dtype)
        y[n, c, i, j] = max(x[n, c, r, q] for r in rows for q in cols)
    return y


def avg_pool2d_naive(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                     count_include_pad=True) -> np.ndarray:
    """y[n, c, i, j] = sum of the window / divisor, where the divisor counts the window clipped to
    the padded input (``count_include_pad``) or only its real pixels. x (N, C, H, W)."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(kernel_size if stride is None else stride)
    h, w = x.shape[2:]
    y = None
    for n, c, i, j, shape, rows, cols in _pool_windows(x, kernel_size, stride, padding, 1, ceil_mode):
        if y is None:
            y = np.empty(x.shape[:2] + shape, dtype=x.dtype)
        if count_include_pad:
            height = min(i * sh - ph + kh, h + ph) - (i * sh - ph)
            width = min(j * sw - pw + kw, w + pw) - (j * sw - pw)
            divisor = height * width
        else:
            divisor = len(rows) * len(cols)
        y[n, c, i, j] = sum(x[n, c, r, q] for r in rows for q in cols) / divisor
    return y
