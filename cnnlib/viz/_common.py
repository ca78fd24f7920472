"""Helpers that several plots share: argument checks, the display form of an image, the
zero-centred colour scale, and numbers written in the cells of a grid."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from numpy.typing import ArrayLike

from ..book import MIN_FONT_PT

DIVERGING = "RdBu_r"


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _display_image(image: ArrayLike, name: str) -> np.ndarray:
    """(H, W) grey or (H, W, 3|4) colour, from any of the layouts the engine produces.

    Channels-first (1|3, H, W) is moved last, a single channel is dropped, and a float colour
    image outside [0, 1] is rescaled to it, because imshow would otherwise clip it silently.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        if np.issubdtype(a.dtype, np.floating) and (a.min() < 0 or a.max() > 1):
            span = a.max() - a.min()
            a = (a - a.min()) / (span if span > 0 else 1)
        return a
    if a.ndim != 2:
        raise ValueError(f"{name} must be an image (H, W), (H, W, 3) or (C, H, W) with C in (1, 3), "
                         f"got shape {a.shape}")
    return a


def _symmetric_norm(values: np.ndarray) -> Normalize:
    """A colour scale centred at zero, so the diverging colormap's white means exactly 0."""
    limit = float(np.max(np.abs(values))) if values.size else 0.0
    limit = limit if limit > 0 else 1.0
    return Normalize(-limit, limit)


def _annotate(ax: Axes, values: np.ndarray, cmap: Colormap, norm: Normalize, fmt: str,
              fontsize: float) -> list[list[Any]]:
    """Write each entry of ``values`` (2-D) in its cell, dark on light cells and light on dark."""
    texts = []
    for i in range(values.shape[0]):
        row = []
        for j in range(values.shape[1]):
            v = values[i, j]
            label = "" if np.isnan(v) else fmt.format(v)
            row.append(ax.text(j, i, label, ha="center", va="center", fontsize=fontsize,
                               color=_text_colour(cmap, norm, v)))
        texts.append(row)
    return texts


def _text_colour(cmap: Colormap, norm: Normalize, value: float) -> str:
    if np.isnan(value):
        return "black"
    r, g, b, _ = cmap(norm(value))
    # Relative luminance (ITU-R BT.709): white text reads better on anything darker than mid-grey.
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"


def _cell_fontsize(shape: tuple[int, ...]) -> float:
    return max(MIN_FONT_PT, 14.0 - 0.8 * max(shape))


def _draw_cell_grid(ax: Axes, shape: tuple[int, int]) -> None:
    """Thin lines between cells so that a worked example reads as a grid of numbers."""
    ax.set_xticks(np.arange(shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
