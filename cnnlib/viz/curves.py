"""Line plots: spectra (singular values, eigenvalues) and training curves."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from ..book import MAX_WIDTH_IN, MIN_FONT_PT


def spectrum(values: ArrayLike | Sequence[ArrayLike] | Mapping[str, ArrayLike], ax: Axes | None = None,
             log: bool = True, title: str | None = None, labels: Sequence[str] | None = None, *,
             normalize: bool = False, ylabel: str = "singular value") -> Figure:
    """Plot one or several spectra (singular values, eigenvalues) sorted in descending order.

    A spectrum that falls off a cliff means a nearly low-rank weight matrix; comparing layers
    (or a layer before and after training) is the point, hence several series on one axes.

    Inputs:
    - values: a 1-D array, a list of 1-D arrays, or a dict {name: 1-D array}. Complex values
      (eigenvalues of a non-symmetric matrix) are plotted by magnitude.
    - ax: axes to draw into; a new figure if None.
    - log: logarithmic value axis (zeros are then not drawn).
    - title: optional axes title.
    - labels: legend names for a list of arrays (a dict supplies its keys).
    - normalize: divide each series by its largest value, to compare shapes across layers.
    - ylabel: label of the value axis.

    Returns:
    - fig: the Figure that holds ``ax``.
    """
    if isinstance(values, Mapping):
        if labels is not None:
            raise ValueError("labels must be None when values is a dict (its keys are the labels)")
        labels, series = list(values.keys()), list(values.values())
    elif all(np.ndim(v) == 0 for v in values):
        series = [values]
    else:
        series = list(values)
    if not series:
        raise ValueError("values is empty")
    if labels is not None and len(labels) != len(series):
        raise ValueError(f"labels has {len(labels)} entries for {len(series)} spectra")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    for i, s in enumerate(series):
        s = np.asarray(s)
        if s.ndim != 1 or s.size == 0:
            raise ValueError(f"values[{i}] must be a non-empty 1-D array, got shape {s.shape}")
        s = np.sort(np.abs(s))[::-1].astype(np.float64)
        if normalize and s[0] > 0:
            s = s / s[0]
        ax.plot(np.arange(1, len(s) + 1), s, marker="o" if len(s) <= 40 else None, markersize=3,
                label=None if labels is None else str(labels[i]))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("index (descending order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel + (" / largest" if normalize else ""))
    if labels is not None:
        ax.legend(fontsize=MIN_FONT_PT)
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax.figure


def _history_series(history: Any, key: str) -> list[float]:
    values = history.get(key, []) if isinstance(history, Mapping) else getattr(history, key, [])
    return list(values or [])


def training_curves(history: Any, axes: Sequence[Axes] | None = None) -> Figure:
    """Loss and accuracy per epoch, training and (when recorded) validation.

    Inputs:
    - history: a :class:`cnnlib.train.History`, or any object or dict with lists
      ``train_loss``, ``train_accuracy`` and optionally ``val_loss``, ``val_accuracy``.
    - axes: two axes (loss, accuracy) to draw into; a new 1x2 figure if None.

    Returns:
    - fig: the Figure that holds the two axes.
    """
    train_loss = _history_series(history, "train_loss")
    if not train_loss:
        raise ValueError("history has no train_loss values; train for at least one epoch first")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.2), layout="constrained")
    axes = list(np.ravel(axes))
    if len(axes) != 2:
        raise ValueError(f"axes must be two Axes (loss, accuracy), got {len(axes)}")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            ys = _history_series(history, f"{split}_{metric}")
            if ys:
                epochs = np.arange(1, len(ys) + 1)
                ax.plot(epochs, ys, style, marker="o" if len(ys) <= 30 else None, markersize=3,
                        label="training" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=MIN_FONT_PT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axes[0].figure
