"""Loss objects: call with (prediction, target) for the mean loss, then ``backward()`` for the
gradient with respect to the prediction."""
from __future__ import annotations

import numpy as np

from . import functional as F


class CrossEntropyLoss:
    """Softmax cross-entropy on logits (N, classes) with integer labels (N,)."""

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> float:
        self.logits, self.labels = logits, labels
        return F.cross_entropy(logits, labels)

    def backward(self) -> np.ndarray:
        return F.cross_entropy_backward(self.logits, self.labels).astype(self.logits.dtype, copy=False)


class MSELoss:
    """Mean squared error over every entry; prediction and target of the same shape."""

    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> float:
        if np.shape(prediction) != np.shape(target):
            raise ValueError(f"MSELoss: prediction {np.shape(prediction)} and target {np.shape(target)} differ")
        self.diff = np.asarray(prediction) - target
        return float(np.mean(self.diff ** 2))

    def backward(self) -> np.ndarray:
        return 2 * self.diff / self.diff.size
