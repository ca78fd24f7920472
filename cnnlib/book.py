"""The book's house style: how a chapter shows a figure, a table and an expected error.

Every chapter calls ``book.style()`` once, in its first cell. From then on a matplotlib figure
shown by the notebook is checked and rendered the same way on every page:

- it is drawn for the page's text column (at most ``MAX_WIDTH_IN`` = 6.8 inches, shown at 96
  CSS pixels per inch, so it is never scaled down at 1280 px and its text keeps its size);
- every visible text in it is at least ``MIN_FONT_PT`` points, so it stays legible;
- it is stored as a PNG with twice the pixels it is shown with (192 dpi), so it is crisp on
  any screen.

A figure that breaks a rule is not shown: the cell fails with an error naming the rule, which
the build and the tests report. Captions and alt text live in the cell's metadata (MyST-NB's
``mystnb.figure.caption`` / ``mystnb.image.alt``), where the page builder numbers them.
"""

from __future__ import annotations

import contextlib
import io
import struct
from typing import Any, Iterator, Sequence

COLUMN_PX = 672      # a cell output's width on a page at 1280 px (measured in Chromium)
SHOWN_DPI = 96       # CSS pixels per inch: the figure is shown at its size in inches ...
PIXEL_DPI = 192      # ... with twice as many pixels per inch as it is shown with
PAD_IN = 0.1         # the margin the tight bounding box keeps around the drawing
MAX_WIDTH_IN = COLUMN_PX / SHOWN_DPI - 2 * PAD_IN   # 6.8 in: never scaled down at 1280 px
MIN_FONT_PT = 9.0

_RC = {
    "figure.dpi": SHOWN_DPI,
    "figure.figsize": (6.4, 3.6),
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "image.interpolation": "nearest",   # pixels stay pixels, as the arrays are
}


def style() -> None:
    """Set the house style for the rest of the notebook (call it once, in the first cell)."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    mpl.rcParams.update(_RC)
    # The inline backend installs its own figure formatters when pyplot first loads it, which
    # is lazy: load it now, so that the formatter below replaces its PNG formatter for good.
    plt.close(plt.figure())
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        formatters = shell.display_formatter.formatters
        formatters["image/png"].for_type(Figure, figure_png)
        for mime in ("image/svg+xml", "application/pdf", "image/jpeg"):
            formatters[mime].pop(Figure, None)


def check_figure(fig: Any) -> None:
    """Raise ValueError if `fig` is wider than the text column or has text below 9 pt."""
    from matplotlib.text import Text

    width = fig.get_figwidth()
    if width > MAX_WIDTH_IN + 1e-9:
        raise ValueError(
            f"figure is {width:.2f} in wide; the page's text column holds {MAX_WIDTH_IN} in "
            "(pass a smaller figsize, or use more rows)"
        )
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT:
            raise ValueError(
                f"text {text.get_text()[:40]!r} is {text.get_fontsize():g} pt; "
                f"text on a page figure is at least {MIN_FONT_PT:g} pt"
            )


def figure_png(fig: Any) -> tuple[bytes, dict[str, dict[str, int]]]:
    """The PNG of a checked figure at 192 dpi, with metadata that shows it at 96 dpi."""
    check_figure(fig)
    buffer = io.BytesIO()
    fig.canvas.print_figure(buffer, format="png", dpi=PIXEL_DPI, bbox_inches="tight",
                            pad_inches=PAD_IN)
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])   # the IHDR chunk of every PNG
    scale = SHOWN_DPI / PIXEL_DPI
    if width * scale > COLUMN_PX + 1:
        raise ValueError(
            f"figure is drawn {width * scale / SHOWN_DPI:.2f} in wide (a legend or label outside "
            f"the axes?); the page's text column holds {COLUMN_PX / SHOWN_DPI:.1f} in"
        )
    return png, {"width": round(width * scale), "height": round(height * scale)}


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
    """Show `rows` (each as long as `header`) as a Markdown table under the cell."""
    from IPython.display import Markdown, display

    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}: {row!r}")
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


@contextlib.contextmanager
def raises(expected: type[BaseException] | tuple[type[BaseException], ...]) -> Iterator[None]:
    """Run a block that must raise `expected`; print the exception's type and message.

    A page shows a deliberate error as one short line, not a traceback; and the block still
    fails the notebook if it raises nothing or raises something else.
    """
    try:
        yield
    except expected as error:
        print(f"{type(error).__name__}: {error}")
    else:
        names = getattr(expected, "__name__", None) or " or ".join(e.__name__ for e in expected)
        raise AssertionError(f"expected {names}, but the block raised nothing")
