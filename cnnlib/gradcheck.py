"""Numerical gradient checks: compare an analytic gradient with centred differences.

Centred differences have error O(eps^2) against O(eps) for one-sided ones, so in
float64 with eps = 1e-6 a correct gradient typically agrees to a relative error
around 1e-8 or better, while a wrong one is off by order 1.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _float64_array(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        # Differences of float32 values lose about half their digits to rounding,
        # which would make every check look wrong.
        raise TypeError(f"{name} must be a float64 numpy array, got {kind}")
    return x


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Gradient of a scalar function by centred differences, one entry at a time.

    grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps). `x` is modified in place
    during the evaluation and restored afterwards, so `f` may close over it.

    Inputs:
    - f: function of x returning a scalar (a float or a 0-d/size-1 array).
    - x: float64 array of any shape, the point at which to differentiate.
    - eps: step size.

    Returns:
    - grad: float64 array of the same shape as x.
    """
    x = _float64_array(x, "x")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        try:
            x[index] = original + eps
            plus = _scalar(f(x))
            x[index] = original - eps
            minus = _scalar(f(x))
        finally:
            # Restore even if f raises, so the caller's array is never left perturbed.
            x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def _scalar(value) -> float:
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"f must return a scalar, got an array of shape {value.shape}")
    return float(value.reshape(()))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the largest magnitude: max|a - b| / max(|a| + |b|).

    Normalising by the largest entry rather than entry by entry keeps near-zero
    entries, where both values are mostly rounding noise, from dominating.

    Inputs:
    - a, b: arrays of the same shape.

    Returns:
    - error: a float in [0, 1]; 0 when both arrays are all zeros.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(a) + np.abs(b))
    return float(np.max(np.abs(a - b)) / max(scale, np.finfo(np.float64).tiny))


def check_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, analytic: np.ndarray, eps: float = 1e-6
) -> float:
    """Relative error between an analytic gradient and the numerical one.

    Inputs:
    - f: scalar function of x.
    - x: float64 array, the point at which to compare.
    - analytic: the claimed gradient of f at x, same shape as x.
    - eps: finite-difference step.

    Returns:
    - error: relative_error(analytic, numerical_gradient(f, x, eps)).
    """
    analytic = np.asarray(analytic)
    if analytic.shape != np.shape(x):
        raise ValueError(f"analytic gradient has shape {analytic.shape}, x has {np.shape(x)}")
    return relative_error(analytic, numerical_gradient(f, x, eps))


def gradcheck(
    forward: Callable[..., np.ndarray],
    backward: Callable[..., object],
    inputs: Sequence[np.ndarray],
    eps: float = 1e-6,
    seed: int = 0,
) -> list[float | None]:
    """Check a forward/backward pair on every input.

    With y = forward(*inputs) and a random upstream gradient dy, the gradient of
    L = sum(y * dy) with respect to inputs[i] is what backward(dy, *inputs)[i] must
    return. A random dy rather than all ones exercises every entry of the Jacobian
    with a different weight, so errors that cancel in a plain sum are caught.

    Inputs:
    - forward: function of the inputs returning an array y.
    - backward: function (dy, *inputs) returning one gradient per input (a tuple or
      list; a bare array when there is one input). A None gradient marks an input
      that is not differentiated, such as integer labels.
    - inputs: the arguments of forward; those with a gradient must be float64 arrays.
    - eps: finite-difference step.
    - seed: seed of the random upstream gradient.

    Returns:
    - errors: per input, the relative error of its gradient, or None where
      backward returned None.
    """
    inputs = list(inputs)
    y = np.asarray(forward(*inputs))
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    grads = backward(dy, *inputs)
    if isinstance(grads, np.ndarray) or not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(inputs):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs")

    errors: list[float | None] = []
    for i, grad in enumerate(grads):
        if grad is None:
            errors.append(None)
            continue
        x = _float64_array(inputs[i], f"inputs[{i}]")
        grad = np.asarray(grad)
        if grad.shape != x.shape:
            raise ValueError(f"gradient {i} has shape {grad.shape}, inputs[{i}] has {x.shape}")

        def loss(_: np.ndarray) -> float:
            # inputs[i] is perturbed in place, so forward sees the change.
            return float(np.sum(np.asarray(forward(*inputs)) * dy))

        errors.append(relative_error(grad, numerical_gradient(loss, x, eps)))
    return errors
