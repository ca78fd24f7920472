"""A heat map (saliency, CAM, Grad-CAM) over its image, resized in NumPy."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._common import _display_image


def _source_coordinates(n_in: int, n_out: int) -> np.ndarray:
    """Where each output pixel's centre falls on the input grid, pixels taken as little squares:
    a 4-pixel map stretched over 32 pixels covers them edge to edge (PyTorch's
    ``align_corners=False``), instead of pinning its centres to the first and last pixels.
    Coordinates beyond the outer centres are clamped to them (the edge values extend)."""
    return np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)


def _resize(heat: np.ndarray, shape: tuple[int, int], method: str) -> np.ndarray:
    """Resize a 2-D map to ``shape`` by nearest or bilinear interpolation, in NumPy.

    Bilinear interpolation is separable: interpolate along the rows, then along the columns.
    """
    if method not in ("nearest", "bilinear"):
        raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {method!r}")
    if heat.shape == shape:
        return heat
    out = heat.astype(np.float64)
    for axis, n_out in enumerate(shape):
        n_in = out.shape[axis]
        c = _source_coordinates(n_in, n_out)
        if method == "nearest":
            # Round half up, as scipy.ndimage.zoom(order=0, grid_mode=True) does.
            out = np.take(out, np.minimum(np.floor(c + 0.5).astype(np.intp), n_in - 1), axis=axis)
            continue
        lo = np.floor(c).astype(np.intp)
        hi = np.minimum(lo + 1, n_in - 1)
        w = (c - lo).reshape([-1 if a == axis else 1 for a in range(2)])
        out = (1 - w) * np.take(out, lo, axis=axis) + w * np.take(out, hi, axis=axis)
    return out


def overlay(image: ArrayLike, heat: ArrayLike, ax: Axes | None = None, alpha: float = 0.5,
            title: str | None = None, *, cmap: str = "viridis", upsample: str = "bilinear",
            colorbar: bool = True) -> Figure:
    """A heat map (saliency, CAM, Grad-CAM) drawn semi-transparently over an image.

    Inputs:
    - image: (H, W), (H, W, 3) or (C, H, W)/(1, C, H, W) with C in (1, 3).
    - heat: (h, w) map; resized to (H, W) when the shapes differ (a CAM is usually coarser).
    - ax: axes to draw into; a new figure if None.
    - alpha: opacity of the heat map, in [0, 1].
    - title: optional axes title.
    - cmap: colormap of the heat map.
    - upsample: 'bilinear' (smooth) or 'nearest' (shows the map's true resolution).
    - colorbar: add a colorbar for the heat values.

    Returns:
    - fig: the Figure that holds ``ax``.
    """
    image = np.asarray(image)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    image = _display_image(image, "image")
    heat = np.asarray(heat)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"heat must be a 2-D map (h, w), got shape {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = _resize(heat, image.shape[:2], upsample)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.4), layout="constrained")
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    shown = ax.imshow(heat, cmap=cmap, alpha=alpha)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title)
    return ax.figure
