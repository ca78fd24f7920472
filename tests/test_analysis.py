"""cnnlib.analysis: spectra against numpy, dead units on hand-built networks, saliency against
finite differences, CAM against Grad-CAM."""
import numpy as np
import pytest

from cnnlib import analysis, nn
from cnnlib import functional as F
from cnnlib.gradcheck import numerical_gradient


def tiny_cnn(rng, flatten=True):
    """Conv -> ReLU -> Conv -> GAP [-> Flatten] -> Linear on (1, 2, 6, 6) inputs, 3 classes."""
    layers = [nn.Conv2d(2, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.Conv2d(4, 5, 3, rng=rng),
              nn.GlobalAvgPool2d()]
    return nn.Sequential(*layers, *([nn.Flatten()] if flatten else []), nn.Linear(5, 3, rng=rng))


def test_weight_matrix_and_singular_values_match_numpy():
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(3, 4, (2, 5), rng=rng)
    w = analysis.weight_matrix(conv.weight)
    assert w.shape == (4, 3 * 2 * 5)
    np.testing.assert_array_equal(w[1], conv.weight.data[1].ravel())
    np.testing.assert_allclose(analysis.singular_values(conv), np.linalg.svd(w, compute_uv=False))
    linear = rng.normal(size=(6, 3))
    assert analysis.weight_matrix(linear) is not None and analysis.weight_matrix(linear).shape == (6, 3)
    np.testing.assert_allclose(analysis.singular_values(linear), np.linalg.svd(linear, compute_uv=False))
    with pytest.raises(ValueError, match="weight"):
        analysis.weight_matrix(np.ones(3))
    with pytest.raises(ValueError, match="ReLU"):
        analysis.weight_matrix(nn.ReLU())


def test_eigenvalues_of_square_and_rectangular_weights():
    triangular = np.array([[2.0, 5.0, 1.0], [0.0, -3.0, 4.0], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(analysis.eigenvalues(triangular), [-3.0, 2.0, 0.5])
    rotation = np.array([[0.0, -2.0], [2.0, 0.0]])  # eigenvalues +-2i
    np.testing.assert_allclose(np.abs(analysis.eigenvalues(rotation)), [2.0, 2.0])
    wide = np.random.default_rng(1).normal(size=(3, 7))
    np.testing.assert_allclose(analysis.eigenvalues(wide), np.sort(np.linalg.eigvalsh(wide @ wide.T))[::-1])
    tall = wide.T  # W W^T is 7x7 of rank 3: four zero eigenvalues
    eig = analysis.eigenvalues(tall)
    assert eig.shape == (7,) and np.all(eig[3:] == 0)
    np.testing.assert_allclose(eig[:3], analysis.singular_values(tall) ** 2)


def test_condition_number_and_ranks_of_known_matrices():
    assert analysis.condition_number(np.diag([4.0, 2.0, 1.0])) == pytest.approx(4.0)
    assert analysis.condition_number(np.array([[1.0, 0.0], [0.0, 0.0]])) == float("inf")
    assert analysis.effective_rank(np.eye(5)) == pytest.approx(5.0)
    rank_one = np.outer([1.0, 2.0, 3.0, 4.0], [2.0, -1.0, 0.5])
    assert analysis.effective_rank(rank_one) == pytest.approx(1.0, abs=1e-9)
    assert analysis.effective_rank(np.zeros((3, 3))) == 0.0
    # Two singular values, 3 and 1: p = (3/4, 1/4).
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert analysis.effective_rank(np.diag([3.0, 1.0])) == pytest.approx(expected)
    rng = np.random.default_rng(2)
    rank_two = rng.normal(size=(4, 2)) @ rng.normal(size=(2, 5))
    assert analysis.numerical_rank(rank_two) == 2
    assert analysis.numerical_rank(np.diag([1.0, 1e-3, 1e-9])) == 3
    assert analysis.numerical_rank(np.diag([1.0, 1e-3, 1e-9]), tol=1e-6) == 2


def test_spectrum_report_covers_every_conv_and_linear_layer():
    rng = np.random.default_rng(3)
    model = nn.Sequential(tiny_cnn(rng), nn.Residual(nn.Sequential(nn.Linear(3, 3, rng=rng))))
    report = analysis.spectrum_report(model)
    assert [row["name"] for row in report] == ["0.0", "0.2", "0.5", "1.body.0"]
    assert [row["layer"] for row in report] == ["Conv2d", "Conv2d", "Linear", "Linear"]
    weights = [name[:-len(".weight")] for name, p in model.named_parameters() if p.data.ndim >= 2]
    assert [row["name"] for row in report] == weights  # one naming scheme for both
    conv2 = report[1]
    s = np.linalg.svd(model[0][2].weight.data.reshape(5, -1), compute_uv=False)
    assert conv2["shape"] == (5, 4, 3, 3) and conv2["matrix"] == (5, 36)
    assert conv2["largest"] == pytest.approx(s[0]) and conv2["smallest"] == pytest.approx(s[-1])
    assert conv2["condition"] == pytest.approx(s[0] / s[-1])
    assert conv2["rank_ratio"] == pytest.approx(conv2["effective_rank"] / 5)
    assert "<table>" in report._repr_html_() and "1.body.0" in str(report)


def test_activations_are_each_layers_output_in_eval_mode():
    rng = np.random.default_rng(4)
    model = nn.Sequential(nn.Linear(4, 8, rng=rng), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2, rng=rng))
    x = rng.normal(size=(7, 4))
    outputs = analysis.activations(model, x, batch_size=3)
    assert [o.shape for o in outputs] == [(7, 8), (7, 8), (7, 8), (7, 2)]
    np.testing.assert_array_equal(outputs[2], outputs[1])  # dropout is off in eval mode
    model.eval()
    np.testing.assert_allclose(outputs[-1], model(x))
    model.train()
    analysis.activations(model, x)
    assert model.training, "the previous mode must be restored"
    with pytest.raises(TypeError, match="Sequential"):
        analysis.activations(nn.ReLU(), x)


def test_dead_relu_fraction_finds_the_units_that_never_fire():
    conv = nn.Conv2d(1, 2, 3, padding=1)
    conv.weight.data[...] = 1 / 9  # both channels average the (positive) input...
    conv.bias.data[...] = [0.0, -100.0]  # ...but channel 1 is pushed far below zero everywhere
    dense = nn.Linear(2, 6)
    dense.weight.data[...] = 1.0
    dense.bias.data[...] = [-100.0, 0.0, -100.0, 0.0, 0.0, -100.0]  # units 0, 2, 5 never fire
    model = nn.Sequential(conv, nn.ReLU(), nn.GlobalAvgPool2d(), dense, nn.ReLU())
    x = np.random.default_rng(5).uniform(0.1, 1.0, size=(20, 1, 5, 5))
    dead = analysis.dead_relu_fraction(model, x, batch_size=6)
    assert dead == {1: 0.5, 4: 0.5}
    # A channel that is alive for some samples only is not dead, but its zeros count as sparsity.
    conv.bias.data[1] = -0.5
    dead = analysis.dead_relu_fraction(model, x)
    zero = analysis.relu_zero_fraction(model, x)
    assert dead[1] < zero[1] < 0.5  # channel 0 is never zero: at most half the values are


def test_dead_and_zero_fractions_exactly_on_an_identity_layer():
    identity = nn.Linear(4, 4)
    identity.weight.data[...] = np.eye(4)
    identity.bias.data[...] = 0
    model = nn.Sequential(identity, nn.ReLU())
    x = np.array([[1.0, -1.0, 2.0, -2.0], [-1.0, -1.0, 1.0, 1.0]])
    assert analysis.dead_relu_fraction(model, x) == {1: 0.25}  # only unit 1 is negative for both
    assert analysis.relu_zero_fraction(model, x) == {1: 0.5}
    with pytest.raises(ValueError, match="ReLU"):
        analysis.dead_relu_fraction(nn.Sequential(identity), x)


def test_filter_redundancy_finds_duplicated_and_negated_filters():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(4, 2, 3, 3))
    w[2] = -3 * w[0]
    result = analysis.filter_redundancy(w, threshold=0.9)
    similarity, fraction = result
    assert similarity.shape == (4, 4)
    np.testing.assert_allclose(similarity, similarity.T)
    np.testing.assert_allclose(np.diag(similarity), 1.0)
    assert similarity[0, 2] == pytest.approx(1.0)
    assert result.pairs == [(0, 2)]
    assert fraction == pytest.approx(1 / 6)
    assert analysis.filter_redundancy(np.eye(3)).fraction == 0.0
    with pytest.raises(ValueError, match="threshold"):
        analysis.filter_redundancy(w, threshold=1.5)


def test_saliency_equals_finite_differences():
    rng = np.random.default_rng(7)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(12, 4, rng=rng))
    x = rng.normal(size=(1, 2, 4, 4))
    model.train()
    saliency = analysis.saliency(model, x, target=2)
    model.eval()
    grad = numerical_gradient(lambda z: model(z)[0, 2], x.copy())
    np.testing.assert_allclose(saliency, np.abs(grad[0]).max(axis=0), rtol=1e-6, atol=1e-9)
    assert saliency.shape == (4, 4)
    assert all(np.all(p.grad == 0) for p in model.parameters())
    with pytest.raises(ValueError, match="single image"):
        analysis.saliency(model, x[0], target=2)
    with pytest.raises(ValueError, match="target"):
        analysis.saliency(model, x, target=4)


@pytest.mark.parametrize("flatten", [True, False])
def test_cam_equals_grad_cam_up_to_the_pooling_factor(flatten):
    rng = np.random.default_rng(8)
    model = tiny_cnn(rng, flatten)
    x = rng.normal(size=(1, 2, 6, 6))
    pool = 3
    cam = analysis.class_activation_map(model, x, target=1)
    assert cam.shape == (4, 4)
    assert np.array_equal(cam, analysis.class_activation_map(model, x, 1, features_end=pool))
    # The score is the mean of the CAM plus the bias: the map decomposes the score.
    assert model(x)[0, 1] == pytest.approx(cam.mean() + model[-1].bias.data[1])
    gc = analysis.grad_cam(model, x, target=1, layer=pool)
    h, w = cam.shape
    np.testing.assert_allclose(gc, np.maximum(cam, 0) / (h * w), atol=1e-12)
    assert np.any(cam < 0) and np.any(cam > 0), "the test should exercise the ReLU of Grad-CAM"
    assert all(np.all(p.grad == 0) for p in model.parameters())


def test_grad_cam_on_an_earlier_layer_and_bad_splits():
    rng = np.random.default_rng(9)
    model = tiny_cnn(rng)
    x = rng.normal(size=(1, 2, 6, 6))
    gc = analysis.grad_cam(model, x, target=0, layer=2)  # the maps after the first ReLU
    assert gc.shape == (6, 6) and np.all(gc >= 0)
    with pytest.raises(ValueError, match="GlobalAvgPool2d"):
        analysis.class_activation_map(model, x, 0, features_end=2)
    with pytest.raises(ValueError, match="GlobalAvgPool2d"):
        analysis.class_activation_map(nn.Sequential(nn.Flatten(), nn.Linear(72, 3)), x, 0)
    with pytest.raises(ValueError, match="layer"):
        analysis.grad_cam(model, x, 0, layer=0)
    with pytest.raises(ValueError, match="feature maps"):
        analysis.grad_cam(model, x, 0, layer=-1)


def test_activation_maximization_increases_the_target_score():
    rng = np.random.default_rng(10)
    model = tiny_cnn(rng)
    start = np.random.default_rng(11).normal(0.0, 0.01, size=(1, 2, 6, 6))
    image = analysis.activation_maximization(model, target=2, shape=(2, 6, 6), steps=50, lr=10, rng=11)
    assert image.shape == (2, 6, 6)
    before, after = model(start)[0, 2], model(image[None])[0, 2]
    assert after > before + 0.2
    # A stronger penalty keeps the image smaller.
    damped = analysis.activation_maximization(model, target=2, shape=(2, 6, 6), steps=50, lr=10, l2=0.02, rng=11)
    assert np.linalg.norm(damped) < 0.5 * np.linalg.norm(image)
    assert all(np.all(p.grad == 0) for p in model.parameters())


def test_shift_invariance_of_max_pooling_on_a_single_bright_pixel():
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 4, 4] = 1.0

    def pool(z):
        return F.max_pool2d(z, 2)

    result = analysis.shift_invariance(pool, x, [(0, 0), (1, 1), (0, -1), 1])
    assert result.shifts == [(0, 0), (1, 1), (0, -1), (0, 1)]
    # (1, 1) keeps the pixel in its 2x2 window; (0, -1) moves it into the next window, changing
    # two of the 16 pooled values by 1; (0, 1) stays in the window as well.
    np.testing.assert_allclose(result.unchanged, [1.0, 1.0, 14 / 16, 1.0])
    np.testing.assert_allclose(result.mean_abs_change, [0.0, 0.0, 2 / 16, 0.0])
    assert "shift (0, -1)" in str(result)
    with pytest.raises(ValueError, match="out of view"):
        analysis.shift_invariance(pool, x, [(8, 0)])


def test_translation_moves_pixels_and_fills_zeros():
    x = np.arange(1.0, 10.0).reshape(3, 3)
    moved = analysis.invariance._translate(x, 1, -1)
    np.testing.assert_array_equal(moved, [[0, 0, 0], [2, 3, 0], [5, 6, 0]])
