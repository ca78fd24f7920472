"""Looking inside a network: weight spectra, dead units, redundant filters, and what the output
depends on (saliency, CAM, Grad-CAM, activation maximisation).

Weights are read as matrices: a conv weight (C_out, C_in, *kernel) becomes (C_out, C_in * prod(kernel)),
one row per filter, which is exactly the matrix the im2col convolution multiplies by. Every
function that runs a model puts it in evaluation mode and restores its previous mode afterwards.
The gradient-based ones use the engine's own ``backward`` and leave every ``Parameter.grad`` at
zero when they return.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import nn
from .random import generator


def _matrix_of(weight: Any) -> np.ndarray:
    """The float64 weight array of an ndarray, a Parameter or a layer with a ``weight``."""
    if isinstance(weight, nn.Module):
        if getattr(weight, "weight", None) is None:
            raise ValueError(f"weight: a {type(weight).__name__} layer has no weight")
        weight = weight.weight
    if isinstance(weight, nn.Parameter):
        weight = weight.data
    return np.asarray(weight, dtype=np.float64)


def weight_matrix(weight: Any) -> np.ndarray:
    """A layer's weight as a matrix with one row per output unit.

    Inputs:
    - weight: conv weight (C_out, C_in, *kernel), linear weight (out_features, in_features),
      a Parameter holding either, or a Conv/Linear layer. (A transposed-conv weight
      (C_in, C_out, *kernel) gives one row per *input* channel.)

    Returns:
    - W: (C_out, C_in * prod(kernel)) float64 array; a 2-D weight is returned as is.
    """
    w = _matrix_of(weight)
    if w.ndim < 2:
        raise ValueError(f"weight must have at least 2 dimensions (out, in, ...), got shape {w.shape}")
    return w.reshape(w.shape[0], -1)


def singular_values(weight: Any) -> np.ndarray:
    """Singular values of :func:`weight_matrix` (weight).

    Inputs:
    - weight: as for :func:`weight_matrix`; W is (m, n).

    Returns:
    - s: (min(m, n),) non-negative, in descending order.
    """
    return np.linalg.svd(weight_matrix(weight), compute_uv=False)


def eigenvalues(weight: Any) -> np.ndarray:
    """Eigenvalues of the weight matrix W (m, n) = :func:`weight_matrix` (weight).

    - Square W (m == n, e.g. a Linear(k, k)): the eigenvalues of W itself. They can be negative
      or complex; they are sorted by descending magnitude and returned as a real array when
      every imaginary part is zero.
    - Otherwise (every conv layer): the eigenvalues of the Gram matrix W W^T (m, m), which are the
      squared singular values of W, followed by m - n zeros when m > n. These are >= 0.

    Inputs:
    - weight: as for :func:`weight_matrix`.

    Returns:
    - eig: (m,) array, descending by magnitude (complex only for a square W with complex
      eigenvalues).
    """
    w = weight_matrix(weight)
    m, n = w.shape
    if m == n:
        values = np.linalg.eigvals(w)
        values = values[np.argsort(-np.abs(values), kind="stable")]
        return values.real if np.all(values.imag == 0) else values
    # From the SVD rather than eigvalsh(W W^T): forming W W^T squares the condition number and
    # rounding would turn the exact zeros into small negative numbers.
    squared = np.linalg.svd(w, compute_uv=False) ** 2
    return np.concatenate([squared, np.zeros(m - len(squared))])


def condition_number(weight: Any) -> float:
    """Largest over smallest singular value of the weight matrix (m, n), over its min(m, n)
    singular values; ``inf`` when the smallest is 0. Large means some input directions are
    amplified far more than others (ill-conditioned, close to losing rank).

    Inputs:
    - weight: as for :func:`weight_matrix`.

    Returns:
    - kappa: float >= 1 (or inf).
    """
    s = singular_values(weight)
    return float("inf") if s[-1] == 0 else float(s[0] / s[-1])


def effective_rank(weight: Any) -> float:
    """Effective rank of Roy & Vetterli (2007): exp of the Shannon entropy of the singular
    values normalised to sum to 1.

    erank = exp(-sum_i p_i log p_i),  p_i = s_i / sum_j s_j  (with 0 log 0 = 0).

    It equals k for k equal non-zero singular values (n for the identity, 1 for a rank-1
    matrix) and falls smoothly between integers as the spectrum becomes uneven, so it measures
    how many directions a layer really uses.

    Inputs:
    - weight: as for :func:`weight_matrix`; W is (m, n).

    Returns:
    - erank: float in [1, min(m, n)]; 0.0 for an all-zero matrix.
    """
    s = singular_values(weight)
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def numerical_rank(weight: Any, tol: float | None = None) -> int:
    """Number of singular values of the weight matrix (m, n) larger than ``tol``.

    Inputs:
    - weight: as for :func:`weight_matrix`.
    - tol: threshold; by default s_max * max(m, n) * eps(float64), numpy.linalg.matrix_rank's
      choice, which counts only directions that rounding alone cannot explain.

    Returns:
    - rank: int in [0, min(m, n)].
    """
    w = weight_matrix(weight)
    s = np.linalg.svd(w, compute_uv=False)
    if tol is None:
        tol = s[0] * max(w.shape) * np.finfo(np.float64).eps
    elif tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    return int(np.sum(s > tol))


def _weighted_layers(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) for every layer below ``module`` with a matrix weight (Conv, Linear), in
    order; names are Sequential indices joined by dots, e.g. '3.body.0'."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.Parameter) and weight.data.ndim >= 2:
        yield prefix or type(module).__name__, module
        return
    if isinstance(module, nn.Sequential):
        children = [(str(i), layer) for i, layer in enumerate(module.layers)]
    else:
        children = []
        for key, value in vars(module).items():
            if isinstance(value, nn.Module):
                children.append((key, value))
            elif isinstance(value, (list, tuple)):
                children += [(f"{key}.{i}", v) for i, v in enumerate(value) if isinstance(v, nn.Module)]
    for name, child in children:
        yield from _weighted_layers(child, f"{prefix}.{name}" if prefix else name)


class SpectrumReport(list):
    """The rows of :func:`spectrum_report`: a list of dicts that prints as a table and renders
    as an HTML table in a notebook (``pandas.DataFrame(report)`` also works)."""

    columns = ("name", "layer", "shape", "matrix", "largest", "smallest", "condition",
               "effective_rank", "numerical_rank", "rank_ratio")

    def _cells(self) -> list[list[str]]:
        def fmt(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4g}"
            if isinstance(value, tuple):
                return "x".join(map(str, value))
            return str(value)
        return [[fmt(row[c]) for c in self.columns] for row in self]

    def __str__(self) -> str:
        lines = [list(self.columns), *self._cells()]
        widths = [max(len(line[j]) for line in lines) for j in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
                       for cells in self._cells())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def spectrum_report(model: nn.Module) -> SpectrumReport:
    """Spectral summary of every Conv and Linear layer of a model (searched recursively).

    Inputs:
    - model: a Module (usually a Sequential).

    Returns:
    - report: a :class:`SpectrumReport`, one dict per layer with keys
      ``name`` (position, e.g. '0' or '3.body.0'), ``layer`` (class name), ``shape`` (weight
      shape), ``matrix`` ((m, n) of :func:`weight_matrix`), ``largest`` and ``smallest``
      (singular values), ``condition`` (:func:`condition_number`), ``effective_rank``,
      ``numerical_rank`` and ``rank_ratio`` (effective rank / min(m, n): 1 when every direction
      is used equally, near 0 when a few dominate).
    """
    report = SpectrumReport()
    for name, layer in _weighted_layers(model):
        w = weight_matrix(layer)
        s = np.linalg.svd(w, compute_uv=False)
        erank = effective_rank(w)
        report.append({
            "name": name, "layer": type(layer).__name__, "shape": tuple(layer.weight.shape),
            "matrix": w.shape, "largest": float(s[0]), "smallest": float(s[-1]),
            "condition": condition_number(w), "effective_rank": erank,
            "numerical_rank": numerical_rank(w), "rank_ratio": erank / len(s),
        })
    return report


def _require_sequential(model: Any, name: str = "model") -> nn.Sequential:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{name} must be a cnnlib.nn.Sequential, got {type(model).__name__}")
    return model


class _EvalMode:
    """Evaluation mode inside a ``with`` block, the previous mode restored after it."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        return self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


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
    with _EvalMode(model):
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
    with _EvalMode(model):
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


def _single_image(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be a single image (1, C, H, W), got shape {x.shape}")
    return x


def _check_target(target: int, classes: int) -> None:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < classes:
        raise ValueError(f"target must be a class index in [0, {classes}), got {target!r}")


def _one_hot(scores: np.ndarray, target: int) -> np.ndarray:
    """The upstream gradient that selects score ``target``: d(score_target)/d(scores)."""
    if scores.ndim != 2:
        raise ValueError(f"the model must output scores (1, classes), got shape {scores.shape}")
    _check_target(target, scores.shape[1])
    dy = np.zeros_like(scores)
    dy[0, target] = 1.0
    return dy


def saliency(model: nn.Module, x: np.ndarray, target: int) -> np.ndarray:
    """Saliency map (Simonyan et al., 2014): how strongly each pixel moves the class score.

    map[h, w] = max_c |d score_target / d x[0, c, h, w]|, where score is the raw class score
    (the logit, before softmax). One forward and one backward pass of the engine, in evaluation
    mode; the model's parameter gradients are zero afterwards.

    Inputs:
    - model: a Module mapping (1, C, H, W) to scores (1, classes).
    - x: (1, C, H, W) image.
    - target: class index.

    Returns:
    - map: (H, W) non-negative array.
    """
    x = _single_image(x)
    with _EvalMode(model):
        scores = model.forward(x)
        dx = model.backward(_one_hot(scores, target))
    model.zero_grad()
    return np.abs(dx[0]).max(axis=0)


def _split_at(model: nn.Sequential, index: int | None, name: str) -> int:
    """A split point 0 < index < len(model) (negative counts from the end)."""
    n = len(model)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"{name} must be an int layer index, got {index!r}")
    index = int(index) + n if index < 0 else int(index)
    if not 0 < index < n:
        raise ValueError(f"{name} must split the model into two non-empty parts, i.e. lie in "
                         f"[1, {n - 1}], got {index}")
    return index


def class_activation_map(model: nn.Sequential, x: np.ndarray, target: int,
                         features_end: int | None = None) -> np.ndarray:
    """Class activation map (Zhou et al., 2016) of a network that ends in global average
    pooling and one Linear layer.

    With feature maps A = model[:features_end](x), (K, h, w), and the last layer's weights w,
    (classes, K):  CAM[i, j] = sum_k w[target, k] A[k, i, j]. Because the pooling is a mean,
    the class score is exactly CAM.mean() + bias[target]: the map shows where the score comes
    from.

    Inputs:
    - model: a Sequential whose layers from ``features_end`` on are exactly GlobalAvgPool2d,
      optionally Flatten, and Linear.
    - x: (1, C, H, W) image.
    - target: class index.
    - features_end: index of the GlobalAvgPool2d layer; found automatically if None.

    Returns:
    - cam: (h, w) array (signed; the feature maps' resolution, see :func:`cnnlib.viz.overlay`
      to draw it over the image).
    """
    model = _require_sequential(model)
    x = _single_image(x)
    if features_end is None:
        pools = [i for i, layer in enumerate(model.layers) if isinstance(layer, nn.GlobalAvgPool2d)]
        if not pools:
            raise ValueError("model has no GlobalAvgPool2d layer, so it has no class activation map")
        features_end = pools[-1]
    features_end = _split_at(model, features_end, "features_end")
    tail = [type(layer).__name__ for layer in model.layers[features_end:]]
    if tail not in (["GlobalAvgPool2d", "Linear"], ["GlobalAvgPool2d", "Flatten", "Linear"]):
        raise ValueError("class_activation_map needs the layers from features_end on to be "
                         f"GlobalAvgPool2d, [Flatten,] Linear; got {tail}")
    linear = model.layers[-1]
    with _EvalMode(model):
        maps = model[:features_end].forward(x)[0]
    weights = linear.weight.data
    if weights.shape[1] != maps.shape[0]:
        raise ValueError(f"the Linear layer takes {weights.shape[1]} features but the feature maps "
                         f"have {maps.shape[0]} channels")
    _check_target(target, weights.shape[0])
    return np.tensordot(weights[target], maps, axes=1)


def grad_cam(model: nn.Sequential, x: np.ndarray, target: int, layer: int) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) for the feature maps A = model[:layer](x), (K, h, w).

    alpha_k = mean over (i, j) of d score_target / d A[k, i, j];
    map = ReLU(sum_k alpha_k A[k]).

    The gradient comes from the engine's backward through model[layer:] only. For a network
    ending in GlobalAvgPool2d + Linear, split at the pooling layer, alpha_k = w[target, k] / (h w),
    so Grad-CAM is ReLU(CAM) / (h w). Evaluation mode; parameter gradients are zero afterwards.

    Inputs:
    - model: a Sequential mapping (1, C, H, W) to scores (1, classes).
    - x: (1, C, H, W) image.
    - target: class index.
    - layer: split point: the maps are the output of layer ``layer - 1`` (a conv or ReLU output,
      (1, K, h, w)); negative values count from the end.

    Returns:
    - map: (h, w) non-negative array.
    """
    model = _require_sequential(model)
    x = _single_image(x)
    layer = _split_at(model, layer, "layer")
    head, tail = model[:layer], model[layer:]
    with _EvalMode(model):
        maps = head.forward(x)
        if maps.ndim != 4:
            raise ValueError(f"layer={layer}: model[:{layer}] gives shape {maps.shape}, "
                             "not feature maps (1, K, h, w)")
        scores = tail.forward(maps)
        d_maps = tail.backward(_one_hot(scores, target))
    model.zero_grad()
    alpha = d_maps[0].mean(axis=(1, 2))
    return np.maximum(np.tensordot(alpha, maps[0], axes=1), 0)


def activation_maximization(model: nn.Module, target: int, shape: tuple[int, ...], steps: int = 200,
                            lr: float = 0.1, l2: float = 1e-3, rng: np.random.Generator | int | None = None,
                            ) -> np.ndarray:
    """The input that a model finds most typical of a class, by gradient ascent
    (Simonyan et al., 2014).

    Maximises  score_target(x) - l2 * ||x||^2  from small random noise with plain gradient
    steps  x += lr * (d score_target / dx - 2 l2 x). The penalty keeps the image bounded; without
    it a ReLU network's score grows without limit along any direction that increases it.
    Evaluation mode; parameter gradients are zero afterwards.

    Inputs:
    - model: a Module mapping (1, *shape) to scores (1, classes).
    - target: class index.
    - shape: shape of one input without the batch axis, e.g. (1, 8, 8).
    - steps, lr: number and size of the ascent steps.
    - l2: weight of the L2 penalty, >= 0.
    - rng: generator or seed of the starting noise (normal, standard deviation 0.01).

    Returns:
    - image: array of the given ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must be the positive shape of one input, e.g. (1, 8, 8), got {shape}")
    if steps < 0 or lr <= 0 or l2 < 0:
        raise ValueError(f"need steps >= 0, lr > 0 and l2 >= 0, got steps={steps}, lr={lr}, l2={l2}")
    x = generator(rng).normal(0.0, 0.01, size=(1, *shape))
    with _EvalMode(model):
        for _ in range(steps):
            scores = model.forward(x)
            grad = model.backward(_one_hot(scores, target))
            x += lr * (grad - 2 * l2 * x)
    model.zero_grad()
    return x[0]


@dataclass(frozen=True)
class ShiftInvariance:
    """Result of :func:`shift_invariance`: one entry per shift, in the order given."""

    shifts: list[tuple[int, int]]
    unchanged: np.ndarray  # (S,) fraction of output entries equal to the unshifted ones
    mean_abs_change: np.ndarray  # (S,) mean |f(shifted x) - f(x)| over all output entries

    def __str__(self) -> str:
        rows = [f"shift {s}: unchanged {u:.1%}, mean |change| {m:.4g}"
                for s, u, m in zip(self.shifts, self.unchanged, self.mean_abs_change)]
        return "\n".join(rows)


def _translate(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x moved dy pixels down and dx right on its last two axes, zeros entering at the border."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    src_r, dst_r = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
    src_c, dst_c = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
    out[..., dst_r, dst_c] = x[..., src_r, src_c]
    return out


def shift_invariance(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                     shifts: Iterable[tuple[int, int] | int], atol: float = 1e-8) -> ShiftInvariance:
    """How much the output of ``fn`` changes when its input is translated by a few pixels.

    For each shift (dy, dx), x is translated by dy rows down and dx columns right on its last
    two axes (the pixels moved out are lost, zeros move in: a real translation, not a circular
    roll), and the outputs are compared entry by entry *at the same positions*:

    - unchanged = fraction of entries with |f(shifted x) - f(x)| <= atol (1.0: perfectly
      invariant to this shift);
    - mean_abs_change = mean of |f(shifted x) - f(x)| over all entries.

    E.g. ``fn = lambda x: F.max_pool2d(x, 2)`` measures the invariance that max pooling buys,
    and ``fn = lambda x: model(x).argmax(1)`` gives the fraction of unchanged predictions.

    Inputs:
    - fn: function of an array shaped like x returning an array (of any fixed shape).
    - x: input, (..., H, W), e.g. a batch (N, C, H, W).
    - shifts: (dy, dx) pairs of ints; an int s means (0, s), a horizontal shift.
    - atol: tolerance of "unchanged".

    Returns:
    - result: :class:`ShiftInvariance` with the shifts and two (S,) arrays.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., H, W), got shape {x.shape}")
    pairs = []
    for s in shifts:
        pair = (0, s) if isinstance(s, (int, np.integer)) else tuple(s)
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
            raise ValueError(f"shifts must hold ints or (dy, dx) pairs of ints, got {s!r}")
        if abs(pair[0]) >= x.shape[-2] or abs(pair[1]) >= x.shape[-1]:
            raise ValueError(f"shift {pair} moves the whole {x.shape[-2:]} image out of view")
        pairs.append((int(pair[0]), int(pair[1])))
    if not pairs:
        raise ValueError("shifts is empty")
    reference = np.asarray(fn(x), dtype=np.float64)
    unchanged, change = [], []
    for dy, dx in pairs:
        moved = np.asarray(fn(_translate(x, dy, dx)), dtype=np.float64)
        if moved.shape != reference.shape:
            raise ValueError(f"fn gives shape {moved.shape} for the shifted input but {reference.shape} "
                             "for the original; it must not depend on the content")
        diff = np.abs(moved - reference)
        unchanged.append(float(np.mean(diff <= atol)))
        change.append(float(diff.mean()))
    return ShiftInvariance(pairs, np.array(unchanged), np.array(change))
