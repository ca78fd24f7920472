"""Plotting helpers that the chapters share.

Every function draws with matplotlib and returns the :class:`~matplotlib.figure.Figure` it drew
on (``sliding_window_animation`` returns the animation). Nothing calls ``plt.show()``: in a
notebook the figure appears at the end of the cell (end the call with ``;`` or assign its
result, or Jupyter shows the returned Figure a second time); in a script call ``plt.show()`` or
``fig.savefig(...)``. Functions that draw a single panel take ``ax=`` (or ``axes=``) to draw into
an existing figure instead of a new one.

Conventions: images in grey (``cmap='gray'``); signed quantities (kernels, gradients, signed
feature maps) in a diverging colormap whose white is exactly zero; a colorbar wherever the
colour encodes a value the reader should be able to read.
"""
from __future__ import annotations

from math import ceil
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from ._params import as_tuple, conv_padding
from .book import MAX_WIDTH_IN, MIN_FONT_PT
from .functional import conv2d
from .nn import Parameter

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
            title: str | None = None, *, cmap: str = "jet", upsample: str = "bilinear",
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


def sliding_window_animation(image: ArrayLike, kernel: ArrayLike, stride: int | tuple[int, int] = 1,
                             padding: int | tuple[int, int] | str = 0, interval: int = 400,
                             max_frames: int | None = None, *, annotate: bool | None = None,
                             fmt: str = "{:.3g}") -> FuncAnimation:
    """Animate a kernel sliding over an image, one output entry per frame.

    Left: the zero-padded input with the current window outlined (and the original image's
    border dashed when there is padding). Right: the output, filled in entry by entry, with the
    entry being computed outlined. The values are exactly ``cnnlib.functional.conv2d``'s
    (cross-correlation, no kernel flip).

    In a notebook: ``IPython.display.HTML(anim.to_jshtml())``. The figure is closed here so that
    the notebook does not also show it as a static picture; this works headless (Agg) and
    offline.

    Inputs:
    - image: (H, W) input.
    - kernel: (kH, kW) filter.
    - stride, padding: as for :func:`cnnlib.functional.conv2d` (padding may be an int, a pair,
      'valid' or 'same').
    - interval: milliseconds between frames.
    - max_frames: stop after this many output entries (the embedded HTML grows with every
      frame: keep it in the low hundreds); all H_out * W_out entries if None.
    - annotate: write the numbers in the cells; by default only when both grids are at most
      12 cells wide.
    - fmt: format string of the numbers written.

    Returns:
    - anim: a FuncAnimation with min(H_out * W_out, max_frames) frames.
    """
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D, got shapes {image.shape} and {kernel.shape}")
    strides = as_tuple(stride, 2, "stride", "sliding_window_animation", minimum=1)
    pads = conv_padding(padding, kernel.shape, (1, 1), strides, "sliding_window_animation")
    out = conv2d(image[None, None], kernel[None, None], stride=strides, padding=padding)[0, 0]
    padded = np.pad(image, pads)
    frames = out.size if max_frames is None else min(out.size, _positive_int(max_frames, "max_frames"))
    if annotate is None:
        annotate = max(*padded.shape, *out.shape) <= 12

    width = padded.shape[1] + out.shape[1]
    fig, (ax_in, ax_out) = plt.subplots(
        1, 2, figsize=(min(MAX_WIDTH_IN, 2.0 + 0.5 * width), 0.5 * max(padded.shape[0], 6) + 1.0),
        gridspec_kw={"width_ratios": [padded.shape[1], out.shape[1]]}, layout="constrained")
    grey = plt.get_cmap("gray")
    in_norm = Normalize(padded.min(), padded.max() if padded.max() > padded.min() else padded.min() + 1)
    ax_in.imshow(padded, cmap=grey, norm=in_norm)
    out_cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    out_norm = Normalize(out.min(), out.max() if out.max() > out.min() else out.min() + 1)
    shown = np.full(out.shape, np.nan)
    out_image = ax_out.imshow(shown, cmap=out_cmap, norm=out_norm)
    for ax, shape in ((ax_in, padded.shape), (ax_out, out.shape)):
        _draw_cell_grid(ax, shape)
        ax.set_xticks([])
        ax.set_yticks([])
    (top, _), (left, _) = pads
    if top or left:
        ax_in.add_patch(Rectangle((left - 0.5, top - 0.5), image.shape[1], image.shape[0], fill=False,
                                  edgecolor="orange", linestyle="--", linewidth=1.5))
    kh, kw = kernel.shape
    window = ax_in.add_patch(Rectangle((-0.5, -0.5), kw, kh, fill=False, edgecolor="crimson", linewidth=2.5))
    cell = ax_out.add_patch(Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="crimson", linewidth=2.5))
    ax_in.set_title(f"input {image.shape[0]}x{image.shape[1]}, padding {pads[0][0]},{pads[1][0]}, "
                    f"stride {strides[0]},{strides[1]}\nkernel {kh}x{kw}", fontsize=9)
    fig.suptitle("sliding window (cross-correlation)")
    out_texts = []
    if annotate:
        _annotate(ax_in, padded, grey, in_norm, fmt, _cell_fontsize(padded.shape))
        out_texts = _annotate(ax_out, shown, out_cmap, out_norm, fmt, _cell_fontsize(out.shape))

    def draw(frame: int) -> list[Any]:
        i, j = divmod(frame, out.shape[1])
        # Restart from an empty output, so that looping the animation (or rendering it twice)
        # never shows entries ahead of the window.
        shown[...] = np.nan
        shown.flat[:frame + 1] = out.flat[:frame + 1]
        out_image.set_data(shown)
        window.set_xy((j * strides[1] - 0.5, i * strides[0] - 0.5))
        cell.set_xy((j - 0.5, i - 0.5))
        for k, row in enumerate(out_texts):
            for m, text in enumerate(row):
                v = shown[k, m]
                text.set_text("" if np.isnan(v) else fmt.format(v))
                text.set_color(_text_colour(out_cmap, out_norm, v))
        ax_out.set_title(f"output {out.shape[0]}x{out.shape[1]}\n"
                         f"y[{i}, {j}] = sum(window * kernel) = {fmt.format(out[i, j])}", fontsize=9)
        return [out_image, window, cell]

    anim = FuncAnimation(fig, draw, frames=frames, interval=interval, blit=False, repeat=True)
    plt.close(fig)
    return anim
