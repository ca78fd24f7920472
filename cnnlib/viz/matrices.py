"""Matrices with their numbers written in the cells: a worked example, a confusion matrix."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from ..book import MAX_WIDTH_IN
from ._common import DIVERGING, _annotate, _cell_fontsize, _draw_cell_grid, _symmetric_norm


def matrix(a: ArrayLike, ax: Axes | None = None, fmt: str = "{:g}", title: str | None = None,
           cmap: str | None = None, *, highlight: tuple[int, int, int, int] | None = None,
           fontsize: float | None = None) -> Figure:
    """Draw a small matrix as a grid of coloured cells with each number written in its cell.

    Meant for worked examples (a 5x5 input, a 3x3 kernel, a pooled output).

    Inputs:
    - a: (H, W) array (a 1-D array is drawn as one row).
    - ax: axes to draw into; a new figure sized to the matrix if None.
    - fmt: format string for each entry, e.g. ``"{:.2f}"``.
    - title: optional axes title.
    - cmap: colormap; by default light blues for non-negative values and a diverging map centred
      at zero when some entries are negative.
    - highlight: optional (row, col, height, width) block to outline, e.g. the window a kernel
      currently covers.
    - fontsize: size of the numbers; chosen from the matrix size if None.

    Returns:
    - fig: the Figure that holds ``ax``.
    """
    values = np.asarray(a)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a must be a non-empty 2-D array, got shape {np.shape(a)}")
    if not np.issubdtype(values.dtype, np.number) and values.dtype != bool:
        raise ValueError(f"a must hold numbers, got dtype {values.dtype}")
    values = values.astype(np.float64) if values.dtype == bool else values
    signed = bool(np.nanmin(values) < 0)
    norm = _symmetric_norm(values) if signed else Normalize(0, max(float(np.nanmax(values)), 1e-12) * 1.6)
    # The non-negative scale stops at 1.6x the maximum so that the darkest cell stays light
    # enough for black numbers: the numbers, not the colours, are the point of this figure.
    colormap = plt.get_cmap(cmap or (DIVERGING if signed else "Blues"))
    if ax is None:
        cell = min(0.55, (MAX_WIDTH_IN - 0.6) / values.shape[1])
        _, ax = plt.subplots(figsize=(cell * values.shape[1] + 0.6, cell * values.shape[0] + 0.6),
                             layout="constrained")
    ax.imshow(values, cmap=colormap, norm=norm)
    _annotate(ax, values, colormap, norm, fmt, fontsize or _cell_fontsize(values.shape))
    _draw_cell_grid(ax, values.shape)
    ax.set_xticks([])
    ax.set_yticks([])
    if highlight is not None:
        row, col, height, width = highlight
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), width, height, fill=False, edgecolor="crimson",
                               linewidth=2.5))
    if title:
        ax.set_title(title)
    return ax.figure


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str] | None = None,
                     ax: Axes | None = None, *, title: str | None = None, cmap: str = "Blues") -> Figure:
    """Confusion matrix of counts, each count written in its cell.

    Row i, column j counts the samples of true class i predicted as class j (scikit-learn's
    convention), so the diagonal holds the correct predictions.

    Inputs:
    - y_true, y_pred: (N,) labels.
    - classes: names of the classes; the labels are then taken to be 0 .. len(classes)-1.
      Without it, the labels present in either array, sorted.
    - ax: axes to draw into; a new figure if None.
    - title: axes title; by default the accuracy.
    - cmap: colormap of the counts.

    Returns:
    - fig: the Figure that holds ``ax``.
    """
    # Imported here: scikit-learn takes about a second to import and only this plot needs it.
    import sklearn.metrics

    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, got {len(y_true)} and {len(y_pred)}")
    labels = np.arange(len(classes)) if classes is not None else np.union1d(y_true, y_pred)
    counts = sklearn.metrics.confusion_matrix(y_true, y_pred, labels=labels)
    names = [str(c) for c in (classes if classes is not None else labels)]
    if ax is None:
        side = 1.2 + 0.5 * len(labels)
        _, ax = plt.subplots(figsize=(side + 0.4, side), layout="constrained")
    colormap = plt.get_cmap(cmap)
    norm = Normalize(0, max(int(counts.max()), 1))
    ax.imshow(counts, cmap=colormap, norm=norm)
    _annotate(ax, counts, colormap, norm, "{:d}", min(11.0, max(6.0, 100 / len(labels))))
    ax.set_xticks(np.arange(len(labels)), names, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(np.arange(len(labels)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title if title is not None else f"accuracy {np.mean(y_true == y_pred):.1%} (N={len(y_true)})")
    return ax.figure
