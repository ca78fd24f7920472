"""Panels of images: pictures side by side, the channels of a feature map, a layer's filters."""
from __future__ import annotations

from math import ceil
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ..book import MAX_WIDTH_IN, MIN_FONT_PT
from ..nn import Parameter
from ._common import DIVERGING, _display_image, _positive_int, _symmetric_norm


def _grid(n: int, ncols: int, size: float, suptitle: str | None = None) -> tuple[Figure, list[Axes]]:
    """A figure with exactly ``n`` axes laid out ``ncols`` to a row (spare cells removed)."""
    ncols = min(ncols, n)
    nrows = ceil(n / ncols)
    size = min(size, MAX_WIDTH_IN / ncols)    # a row of panels fits the page's text column
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    for ax in flat[:n]:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    return fig, flat[:n]


def show_images(images: ArrayLike | Sequence[ArrayLike], titles: Sequence[str] | None = None, ncols: int = 8,
                cmap: str = "gray", size: float = 1.6, suptitle: str | None = None, *,
                vmin: float | None = None, vmax: float | None = None) -> Figure:
    """Show images side by side, ``ncols`` to a row.

    Inputs:
    - images: a list of images, each (H, W), (H, W, 3) or (C, H, W) with C in (1, 3); or an
      array (N, H, W), (N, H, W, 3) or (N, C, H, W) (a batch as the engine uses it); a single
      (H, W) or (H, W, 3) array is one image.
    - titles: optional list of N titles, one per image.
    - ncols: images per row.
    - cmap: colormap of grey images.
    - size: side of one panel in inches.
    - suptitle: optional title above all panels.
    - vmin, vmax: shared grey range; by default each image uses its own min and max.

    Returns:
    - fig: a Figure with N axes.
    """
    if isinstance(images, np.ndarray) and (images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4))):
        images = [images]
    images = [_display_image(img, f"images[{i}]") for i, img in enumerate(images)]
    if not images:
        raise ValueError("images is empty")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
    fig, axes = _grid(len(images), _positive_int(ncols, "ncols"), size, suptitle)
    for i, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return fig


def feature_maps(maps: ArrayLike, ncols: int = 8, title: str | None = None, *, cmap: str | None = None,
                 size: float = 1.4, colorbar: bool = True) -> Figure:
    """One panel per channel of a stack of feature maps, all on one colour scale.

    A shared scale makes channels comparable: a channel that is dark everywhere really is
    (nearly) zero, which is how dead or weak channels show.

    Inputs:
    - maps: (C, H, W), or (1, C, H, W) for the output of a layer on one image.
    - ncols: panels per row.
    - title: optional title above all panels.
    - cmap: grey for non-negative maps (after a ReLU), a diverging map centred at zero for signed
      ones, unless given.
    - size: side of one panel in inches.
    - colorbar: add one colorbar for all panels.

    Returns:
    - fig: a Figure with C axes, plus one for the colorbar.
    """
    maps = np.asarray(maps)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3 or maps.size == 0:
        raise ValueError(f"maps must be (C, H, W) or (1, C, H, W), got shape {np.shape(maps)}")
    signed = bool(maps.min() < 0)
    norm = _symmetric_norm(maps) if signed else Normalize(0, max(float(maps.max()), 1e-12))
    fig, axes = _grid(len(maps), _positive_int(ncols, "ncols"), size, title)
    for k, (ax, m) in enumerate(zip(axes, maps)):
        image = ax.imshow(m, cmap=cmap or (DIVERGING if signed else "gray"), norm=norm)
        ax.set_title(f"channel {k}", fontsize=MIN_FONT_PT)
    if colorbar:
        fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def filters(weight: ArrayLike, ncols: int = 8, title: str | None = None, *, mode: str = "auto",
            size: float = 1.2, cmap: str = DIVERGING) -> Figure:
    """Show the filters of a convolution layer, on a colour scale symmetric about zero.

    Inputs:
    - weight: conv weight (C_out, C_in, kH, kW) (an ndarray or a Parameter).
    - ncols: panels per row (ignored by ``mode='grid'``).
    - title: optional title above all panels.
    - mode: how the C_in input channels of each filter are shown:
      ``'rgb'``: as one colour image (needs C_in == 3), mid-grey is zero;
      ``'mean'``: their mean, in ``cmap`` with a colorbar;
      ``'grid'``: one row per filter, one column per input channel, with a colorbar;
      ``'auto'``: 'rgb' when C_in == 3, 'mean' otherwise (exact when C_in == 1).
    - size: side of one panel in inches.
    - cmap: diverging colormap for 'mean' and 'grid'.

    Returns:
    - fig: a Figure with C_out axes ('rgb'), C_out + 1 ('mean', with the colorbar) or
      C_out * C_in + 1 ('grid').
    """
    # A Parameter is unwrapped by name: an ndarray's own .data is its raw buffer.
    w = np.asarray(weight.data if isinstance(weight, Parameter) else weight)
    if w.ndim != 4:
        raise ValueError(f"weight must be a conv weight (C_out, C_in, kH, kW), got shape {w.shape}")
    c_out, c_in = w.shape[:2]
    if mode == "auto":
        mode = "rgb" if c_in == 3 else "mean"
    if mode == "rgb":
        if c_in != 3:
            raise ValueError(f"mode='rgb' needs 3 input channels, weight has C_in={c_in}")
        limit = _symmetric_norm(w).vmax
        fig, axes = _grid(c_out, _positive_int(ncols, "ncols"), size, title)
        for k, ax in enumerate(axes):
            ax.imshow(0.5 + 0.5 * w[k].transpose(1, 2, 0) / limit)
            ax.set_title(f"filter {k}", fontsize=MIN_FONT_PT)
        return fig
    if mode == "mean":
        panels = w.mean(axis=1)
        if title is None and c_in > 1:
            title = f"filters (mean over {c_in} input channels)"
        fig, axes = _grid(c_out, _positive_int(ncols, "ncols"), size, title)
        names = [f"filter {k}" for k in range(c_out)]
    elif mode == "grid":
        panels = w.reshape(c_out * c_in, *w.shape[2:])
        fig, axes = _grid(c_out * c_in, c_in, size, title)
        names = [f"{k}, in {c}" for k in range(c_out) for c in range(c_in)]
    else:
        raise ValueError(f"mode must be 'auto', 'rgb', 'mean' or 'grid', got {mode!r}")
    norm = _symmetric_norm(panels)
    for ax, panel, name in zip(axes, panels, names):
        image = ax.imshow(panel, cmap=cmap, norm=norm)
        ax.set_title(name, fontsize=MIN_FONT_PT)
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig
