"""Softmax and the cross-entropy loss on logits (N, classes) with integer labels (N,)."""
from __future__ import annotations

import numpy as np

from .._params import as_array


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(logits)) along ``axis``, shifted by the max so exp never overflows."""
    z = np.asarray(logits)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(logits) normalised to sum to one along ``axis``."""
    return np.exp(log_softmax(logits, axis))


def _check(op: str, logits, labels):
    logits = as_array(logits, "logits", op, 2, "(N, classes)")
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{op}: labels must be {logits.shape[0]} integers (shape ({logits.shape[0]},)), "
                         f"got shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"{op}: labels must lie in [0, {logits.shape[1]}), got "
                         f"min {labels.min()} and max {labels.max()}")
    return logits, labels


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes, as ``torch.nn.functional.cross_entropy``.

    Inputs:
    - logits: unnormalised scores (N, classes).
    - labels: true classes (N,), integers in [0, classes).

    Returns:
    - the mean loss over the batch, a float.
    """
    logits, labels = _check("cross_entropy", logits, labels)
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def cross_entropy_backward(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to the logits: (softmax - one_hot) / N."""
    logits, labels = _check("cross_entropy_backward", logits, labels)
    grad = softmax(logits)
    grad[np.arange(len(labels)), labels] -= 1
    return grad / len(labels)
