"""Weight spectra: a layer's weight read as a matrix, its singular values and eigenvalues,
condition number and ranks, and a report of every Conv and Linear layer of a model.

A conv weight (C_out, C_in, *kernel) becomes (C_out, C_in * prod(kernel)), one row per filter,
which is exactly the matrix the im2col convolution multiplies by.
"""
from __future__ import annotations

from html import escape
from typing import Any, Iterator

import numpy as np

from .. import nn


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


def _weighted_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) for every layer with a matrix weight (Conv, Linear), named and ordered as in
    ``model.named_modules()`` ('3.body.0': the first layer of the body of the Sequential's
    fourth layer); a model that is itself such a layer is named by its class."""
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.data.ndim >= 2:
            yield name.rstrip(".") or type(module).__name__, module


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
