"""cnnlib.book: the house style every chapter's figures, tables and expected errors go through."""
import struct

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from cnnlib import book


def test_a_figure_wider_than_the_text_column_is_refused():
    fig = plt.figure(figsize=(14, 3))
    with pytest.raises(ValueError, match="14.00 in wide"):
        book.check_figure(fig)
    plt.close(fig)


def test_text_below_nine_points_is_refused_and_names_the_text():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title("panel", fontsize=6)
    with pytest.raises(ValueError, match="'panel' is 6 pt"):
        book.check_figure(fig)
    ax.set_title("panel", fontsize=9)
    book.check_figure(fig)
    plt.close(fig)


def test_the_png_has_twice_the_pixels_it_is_shown_with():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [0, 1])
    png, meta = book.figure_png(fig)
    width, height = struct.unpack(">II", png[16:24])
    assert meta["width"] == round(width / 2) and meta["height"] == round(height / 2)
    assert 400 < meta["width"] <= 6 * 96      # tight bounding box, shown at 96 px per inch
    plt.close(fig)


def test_raises_prints_one_line_and_fails_when_nothing_is_raised(capsys):
    with book.raises(ValueError):
        int("x")
    assert capsys.readouterr().out == "ValueError: invalid literal for int() with base 10: 'x'\n"
    with pytest.raises(AssertionError, match="expected ValueError or KeyError"):
        with book.raises((ValueError, KeyError)):
            pass
    with pytest.raises(TypeError):          # another error is not swallowed
        with book.raises(ValueError):
            len(3)


def test_table_refuses_a_row_of_the_wrong_length():
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        book.table(["a", "b"], [[1]])


def test_a_figure_drawn_beyond_its_own_edge_is_refused():
    # A legend outside the axes widens the tight bounding box past the text column even
    # though the figure itself fits.
    fig, ax = plt.subplots(figsize=(book.MAX_WIDTH_IN, 3))
    ax.plot([0, 1], label="a long legend entry far to the right")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    with pytest.raises(ValueError, match="a legend or label outside"):
        book.figure_png(fig)
    plt.close(fig)
