import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from cnnlib import functional as F  # noqa: E402
from cnnlib import viz  # noqa: E402
from cnnlib.train import History  # noqa: E402

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_show_images_one_axes_per_image_in_any_layout():
    batch = rng.random((10, 1, 8, 8))
    fig = viz.show_images(batch, titles=[str(i) for i in range(10)], ncols=4, suptitle="digits")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert fig.axes[3].get_title() == "3"
    assert fig.axes[0].images[0].get_array().shape == (8, 8)
    assert len(viz.show_images([rng.random((5, 5)), rng.random((5, 5, 3))]).axes) == 2
    # A float colour image outside [0, 1] is rescaled instead of clipped.
    shown = viz.show_images([rng.normal(size=(3, 6, 6))]).axes[0].images[0].get_array()
    assert shown.shape == (6, 6, 3) and shown.min() == 0 and shown.max() == 1
    with pytest.raises(ValueError, match="titles"):
        viz.show_images(batch, titles=["a"])
    with pytest.raises(ValueError, match="images\\[0\\]"):
        viz.show_images([np.zeros((2, 3, 4, 5))])


def test_matrix_writes_every_number_and_outlines_the_window():
    a = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    fig = viz.matrix(a, title="input", highlight=(0, 1, 2, 2))
    ax = fig.axes[0]
    assert texts(ax) == [str(v) for v in a.ravel()]
    outline = [p for p in ax.patches if isinstance(p, Rectangle)][0]
    assert outline.get_xy() == (0.5, -0.5) and outline.get_width() == 2
    # Signed values get a colour scale symmetric about zero.
    fig, ax = plt.subplots()
    assert viz.matrix(np.array([[-1.0, 0.25]]), ax=ax, fmt="{:.2f}") is fig
    assert texts(ax) == ["-1.00", "0.25"]
    assert ax.images[0].norm.vmin == -1 and ax.images[0].norm.vmax == 1
    with pytest.raises(ValueError, match="2-D"):
        viz.matrix(np.zeros((2, 2, 2)))


def test_feature_maps_share_one_scale_and_a_colorbar():
    maps = rng.random((5, 6, 6))
    fig = viz.feature_maps(maps[None], ncols=3, title="conv1")
    assert len(fig.axes) == 5 + 1
    norms = {(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in fig.axes[:5]}
    assert norms == {(0, maps.max())}
    with pytest.raises(ValueError, match="maps"):
        viz.feature_maps(maps[0])


def test_filters_panels_per_mode_with_symmetric_range():
    w = rng.normal(size=(6, 2, 3, 3))
    fig = viz.filters(w, ncols=3)
    assert len(fig.axes) == 6 + 1
    norm = fig.axes[0].images[0].norm
    assert norm.vmin == -norm.vmax == -np.abs(w.mean(axis=1)).max()
    assert len(viz.filters(w, mode="grid").axes) == 12 + 1
    rgb = viz.filters(rng.normal(size=(4, 3, 5, 5)))
    assert len(rgb.axes) == 4 and rgb.axes[0].images[0].get_array().shape == (5, 5, 3)
    with pytest.raises(ValueError, match="C_in=2"):
        viz.filters(w, mode="rgb")
    with pytest.raises(ValueError, match="weight"):
        viz.filters(w[0])


def test_spectrum_plots_each_series_sorted_descending():
    fig = viz.spectrum({"conv1": np.array([1.0, 3.0, 2.0]), "fc": np.array([0.5, 4.0])}, title="spectra")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [3, 2, 1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["conv1", "fc"]
    ax = viz.spectrum([3.0, 1.0, 2.0], log=False, normalize=True).axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="labels"):
        viz.spectrum([np.ones(2), np.ones(3)], labels=["one"])


def test_training_curves_two_panels_with_and_without_validation():
    h = History(train_loss=[1.0, 0.5, 0.3], train_accuracy=[0.5, 0.8, 0.9],
                val_loss=[1.1, 0.7, 0.6], val_accuracy=[0.4, 0.7, 0.8])
    fig = viz.training_curves(h)
    assert len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    np.testing.assert_array_equal(fig.axes[1].lines[1].get_ydata(), [0.4, 0.7, 0.8])
    fig = h.plot()  # History.plot goes through viz.training_curves
    assert len(fig.axes) == 2
    no_val = viz.training_curves({"train_loss": [1.0], "train_accuracy": [0.5]})
    assert [len(ax.lines) for ax in no_val.axes] == [1, 1]
    with pytest.raises(ValueError, match="train_loss"):
        viz.training_curves(History())


def test_confusion_matrix_counts_are_written_in_cells():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    fig = viz.confusion_matrix(y_true, y_pred, classes=["a", "b", "c"])
    ax = fig.axes[0]
    assert texts(ax) == ["1", "1", "0", "0", "2", "0", "1", "0", "1"]
    assert "66.7%" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_overlay_upsamples_the_heat_map_to_the_image():
    image = rng.random((3, 16, 16))
    heat = np.arange(16.0).reshape(4, 4)
    fig = viz.overlay(image, heat, title="CAM")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the image axes and the heat colorbar
    up = ax.images[1].get_array()
    assert up.shape == (16, 16)
    # Nearest upsampling repeats each heat value over a 4x4 block.
    ax2 = viz.overlay(image[0], heat, upsample="nearest", colorbar=False).axes[0]
    np.testing.assert_array_equal(ax2.images[1].get_array(), np.kron(heat, np.ones((4, 4))))
    with pytest.raises(ValueError, match="upsample"):
        viz.overlay(image, heat, upsample="cubic")


# cnnlib.viz runs without SciPy (not a runtime dependency): a blocker on sys.meta_path makes every
# scipy import fail, then overlay upsamples with both methods and saves what it drew.
NO_SCIPY = """
import sys
class NoScipy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, NoScipy())
import matplotlib
matplotlib.use("Agg")
import numpy as np
from cnnlib import viz
heat = np.arange(12.0).reshape(3, 4) ** 1.5
out = {}
for method in ("bilinear", "nearest"):
    fig = viz.overlay(np.zeros((3, 17, 10)), heat, upsample=method)
    out[method] = fig.axes[0].images[1].get_array().data
assert not any(m == "scipy" or m.startswith("scipy.") for m in sys.modules), "scipy was imported"
np.savez(sys.argv[1], heat=heat, **out)
"""


def test_viz_works_without_scipy(tmp_path):
    import subprocess
    import sys

    from scipy import ndimage

    result = tmp_path / "drawn.npz"
    run = subprocess.run([sys.executable, "-c", NO_SCIPY, str(result)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    drawn = np.load(result)
    heat = drawn["heat"]
    for method, order in (("bilinear", 1), ("nearest", 0)):
        expected = ndimage.zoom(heat, (17 / 3, 10 / 4), order=order, grid_mode=True, mode="nearest")
        np.testing.assert_allclose(drawn[method], expected, atol=1e-12, err_msg=method)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (4, 4), (5, 3), (7, 12), (16, 16), (32, 9)])
def test_resize_matches_scipy_zoom_and_torch_bilinear(shape):
    import torch
    from scipy import ndimage

    for heat in (rng.random((4, 4)), rng.random((1, 3)), rng.random((6, 5))):
        if heat.shape == shape:
            continue
        factors = (shape[0] / heat.shape[0], shape[1] / heat.shape[1])
        for method, order in (("bilinear", 1), ("nearest", 0)):
            np.testing.assert_allclose(viz._resize(heat, shape, method),
                                       ndimage.zoom(heat, factors, order=order, grid_mode=True, mode="nearest"),
                                       atol=1e-12, err_msg=f"{method} {heat.shape} -> {shape}")
        # Bilinear is PyTorch's interpolate(mode='bilinear', align_corners=False).
        torch_up = torch.nn.functional.interpolate(torch.tensor(heat)[None, None], size=shape, mode="bilinear",
                                                   align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(viz._resize(heat, shape, "bilinear"), torch_up, atol=1e-12)


def test_sliding_window_animation_frames_and_html():
    image = np.arange(16.0).reshape(4, 4)
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    anim = viz.sliding_window_animation(image, kernel, padding=1, stride=2)
    assert isinstance(anim, FuncAnimation)
    assert sum(1 for _ in anim.new_frame_seq()) == 9  # a 3x3 output
    assert not plt.get_fignums(), "the figure must be closed so notebooks do not show it twice"
    html = anim.to_jshtml()
    assert "<img" in html or "data:image/png" in html
    # The last frame shows the whole conv2d output, written in its cells.
    out = F.conv2d(image[None, None], kernel[None, None], stride=2, padding=1)[0, 0]
    fig = anim._fig
    anim._func(8)
    ax_out = fig.axes[1]
    np.testing.assert_array_equal(ax_out.images[0].get_array(), out)
    assert texts(ax_out) == [f"{v:.3g}" for v in out.ravel()]
    short = viz.sliding_window_animation(image, kernel, max_frames=2)
    assert sum(1 for _ in short.new_frame_seq()) == 2
    assert "frames[1]" in short.to_jshtml()
    with pytest.raises(ValueError, match="larger than the padded input"):
        viz.sliding_window_animation(image, np.ones((5, 5)))
