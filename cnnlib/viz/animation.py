"""A kernel sliding over an image, animated one output entry at a time."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle
from numpy.typing import ArrayLike

from .._params import as_tuple, conv_padding
from ..book import MAX_WIDTH_IN
from ..functional import conv2d
from ._common import _annotate, _cell_fontsize, _draw_cell_grid, _positive_int, _text_colour


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
