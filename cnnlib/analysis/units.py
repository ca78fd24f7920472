"""Units and filters: every layer's output, dead and silent ReLU units, and filters that copy
one another. A model runs in evaluation mode (``Module.evaluating``) and keeps its previous mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .. import nn
from .spectra import weight_matrix


def _require_sequential(model: Any) -> nn.Sequential:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a cnnlib.nn.Sequential, got {type(model).__name__}")
    return model


def _batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


def activations(model: nn.Sequential, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """The output of every layer of a Sequential, in evaluation mode.

    Inputs:
    - model: a Sequential of L layers.
    - x: (N, ...) input batch. It is fed ``batch_size`` samples at a time, which bounds the
      memory of the layers' intermediate buffers (not of the returned outputs).
    - batch_size: samples per forward pass.

    Returns:
    - outputs: list of L arrays; outputs[i] is the output of layer i, (N, ...), so that
      outputs[-1] is the model's output.
    """
    model = _require_sequential(model)
    x = np.asarray(x)
    if len(x) == 0:
        raise ValueError("x is empty")
    per_layer: list[list[np.ndarray]] = [[] for _ in model.layers]
    with model.evaluating():
        for batch in _batches(x, batch_size):
            for i, layer in enumerate(model.layers):
                batch = layer(batch)
                per_layer[i].append(batch)
    return [np.concatenate(outputs) for outputs in per_layer]


def _relu_statistics(model: nn.Sequential, x: np.ndarray, batch_size: int) -> tuple[dict[int, float], dict[int, float]]:
    """For each top-level ReLU index: (dead fraction, zero fraction), streamed over batches."""
    model = _require_sequential(model)
    x = np.asarray(x)
    if len(x) == 0:
        raise ValueError("x is empty")
    relus = [i for i, layer in enumerate(model.layers) if isinstance(layer, nn.ReLU)]
    if not relus:
        raise ValueError("model has no ReLU layer at its top level")
    alive: dict[int, np.ndarray] = {}
    zeros = dict.fromkeys(relus, 0)
    with model.evaluating():
        for batch in _batches(x, batch_size):
            for i, layer in enumerate(model.layers[:relus[-1] + 1]):
                batch = layer(batch)
                if i in zeros:
                    positive = (batch > 0).any(axis=0)
                    alive[i] = positive if i not in alive else alive[i] | positive
                    zeros[i] += int(np.count_nonzero(batch == 0))
    dead = {i: float(1 - alive[i].mean()) for i in relus}
    total = {i: alive[i].size * len(x) for i in relus}
    return dead, {i: zeros[i] / total[i] for i in relus}


def dead_relu_fraction(model: nn.Sequential, x: np.ndarray, batch_size: int = 256) -> dict[int, float]:
    """Fraction of dead units after each ReLU of a Sequential: units that output 0 for every
    sample of x, so that no gradient reaches the weights feeding them.

    A unit is one entry of the layer's output for one sample: a neuron after a Linear, a
    (channel, row, column) position after a Conv.

    Inputs:
    - model: a Sequential; its top-level ReLU layers are measured.
    - x: (N, ...) input batch; the more samples, the fewer units look dead by chance.
    - batch_size: samples per forward pass.

    Returns:
    - dead: {layer index of the ReLU: fraction in [0, 1]}, in layer order.
    """
    return _relu_statistics(model, x, batch_size)[0]


def relu_zero_fraction(model: nn.Sequential, x: np.ndarray, batch_size: int = 256) -> dict[int, float]:
    """Fraction of all activations (samples x units) that are exactly 0 after each ReLU of a
    Sequential: the layer's sparsity, which includes dead units but also units that are merely
    inactive on some inputs.

    Inputs:
    - model: a Sequential; its top-level ReLU layers are measured.
    - x: (N, ...) input batch.
    - batch_size: samples per forward pass.

    Returns:
    - zero: {layer index of the ReLU: fraction in [0, 1]}, in layer order.
    """
    return _relu_statistics(model, x, batch_size)[1]


@dataclass(frozen=True)
class FilterRedundancy:
    """Result of :func:`filter_redundancy`; unpacks as ``similarity, fraction = ...``."""

    similarity: np.ndarray  # (C_out, C_out) absolute cosine similarity, 1 on the diagonal
    fraction: float  # fraction of the C_out (C_out - 1) / 2 pairs above the threshold
    threshold: float

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The filter pairs (i, j), i < j, whose similarity exceeds the threshold."""
        i, j = np.nonzero(np.triu(self.similarity > self.threshold, k=1))
        return list(zip(i.tolist(), j.tolist()))

    def __iter__(self) -> Iterator[Any]:
        return iter((self.similarity, self.fraction))


def filter_redundancy(weight: Any, threshold: float = 0.9) -> FilterRedundancy:
    """How many filters of a layer are (nearly) copies of one another.

    The similarity of filters i and j is |cos| of the angle between their flattened weights,
    |<w_i, w_j>| / (|w_i| |w_j|). The absolute value counts a filter and its negation as
    redundant: they detect the same pattern with opposite sign. An all-zero filter has
    similarity 0 with every filter (itself included).

    Inputs:
    - weight: as for :func:`weight_matrix`, C_out filters.
    - threshold: similarity above which a pair counts as redundant, in [0, 1].

    Returns:
    - result: :class:`FilterRedundancy` with ``similarity`` (C_out, C_out), ``fraction`` of
      pairs i < j above the threshold (0.0 when C_out < 2) and ``pairs``.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    w = weight_matrix(weight)
    norms = np.linalg.norm(w, axis=1)
    unit = w / np.where(norms > 0, norms, 1)[:, None]
    similarity = np.clip(np.abs(unit @ unit.T), 0, 1)
    c = len(w)
    above = np.count_nonzero(np.triu(similarity > threshold, k=1))
    return FilterRedundancy(similarity, above / (c * (c - 1) / 2) if c > 1 else 0.0, threshold)
