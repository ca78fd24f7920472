"""Argument checking shared by the functional ops.

Every op accepts an int or a per-axis tuple for ``stride``, ``padding``, ``dilation`` and
``kernel_size``; these helpers turn them into tuples and reject bad values with a message that
names the op, the argument and the value, so that no error surfaces later as a bare IndexError.
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import numpy as np

IntOrTuple = Union[int, Sequence[int]]


def as_tuple(value: IntOrTuple, n: int, name: str, op: str, minimum: int) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``n`` ints, each at least ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        values = tuple(int(v) for v in value)
        if len(values) != n:
            raise ValueError(f"{op}: {name} needs {n} values (one per spatial axis), got {value!r}")
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {bound}, got {value!r}")
    return values


def as_array(x, name: str, op: str, ndim: int, layout: str) -> np.ndarray:
    """Return ``x`` as a floating ndarray of rank ``ndim``; ``layout`` names the axes for errors.

    Integer input is promoted to float64; float32 stays float32 so that the output dtype follows
    the input, as in PyTorch.
    """
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise TypeError(f"{op}: {name} must hold numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    return x


def conv_padding(padding, kernel, dilation, stride, op: str) -> tuple[tuple[int, int], ...]:
    """Per-axis (before, after) zero padding for a convolution.

    ``'same'`` pads ``d * (k - 1)`` in total and, when that is odd, puts the extra pixel after
    (bottom/right), exactly as PyTorch does; like PyTorch it only exists for stride 1.
    """
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' requires stride 1, got stride {stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in as_tuple(padding, n, "padding", op, minimum=0))


def window_count(size: int, pads: tuple[int, int], kernel: int, stride: int, dilation: int,
                 ceil_mode: bool = False) -> int:
    """Number of window positions along one axis: floor (or ceil) of the span over the stride, plus one.

    ``pads`` is the (before, after) padding. With ``ceil_mode`` a last, partial window is kept
    only if it starts inside the input or the padding before it (PyTorch's rule), even a first
    window that reaches past the padded input. Returns 0 or less when there is no window.
    """
    span = size + pads[0] + pads[1] - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    if (count - 1) * stride >= size + pads[0]:
        count -= 1
    return count


def check_bias(op: str, bias, channels: int, dtype) -> np.ndarray | None:
    """Return ``bias`` as a (channels,) array of ``dtype``, or None."""
    if bias is None:
        return None
    bias = np.asarray(bias, dtype=dtype)
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got {bias.shape}")
    return bias


def check_gradient(op: str, dy, expected: tuple[int, ...], dtype) -> np.ndarray:
    """Return the upstream gradient ``dy`` as an array of ``dtype``, checking it has the
    forward output's shape (a silent broadcast here would give wrong gradients)."""
    dy = np.asarray(dy)
    if dy.shape != tuple(expected):
        raise ValueError(f"{op}: dy must have the output's shape {tuple(expected)}, got {dy.shape}")
    return dy.astype(dtype, copy=False)
