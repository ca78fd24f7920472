"""The fully connected (dense) layer y = x W^T + b."""
from __future__ import annotations

import numpy as np

from .._params import as_array, check_bias, check_gradient


def _check(op: str, x, weight):
    x = as_array(x, "x", op, 2, "(N, in_features)")
    weight = as_array(weight, "weight", op, 2, "(out_features, in_features)")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: x has {x.shape[1]} features but weight of shape {weight.shape} "
                         f"expects {weight.shape[1]}")
    dtype = np.result_type(x.dtype, weight.dtype)
    return x.astype(dtype, copy=False), weight.astype(dtype, copy=False)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Dense layer, as ``torch.nn.functional.linear``.

    Inputs:
    - x: (N, in_features).
    - weight: (out_features, in_features).
    - bias: optional (out_features,).

    Returns:
    - y of shape (N, out_features).
    """
    x, weight = _check("linear", x, weight)
    y = x @ weight.T
    bias = check_bias("linear", bias, weight.shape[0], y.dtype)
    return y if bias is None else y + bias


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray):
    """Gradients of :func:`linear`.

    Inputs:
    - dy: upstream gradient (N, out_features).
    - x, weight: as passed to the forward.

    Returns:
    - (dx, dweight, dbias) of shapes (N, in_features), (out_features, in_features), (out_features,).
    """
    x, weight = _check("linear_backward", x, weight)
    dy = check_gradient("linear_backward", dy, (x.shape[0], weight.shape[0]), x.dtype)
    return dy @ weight, dy.T @ x, dy.sum(axis=0)
