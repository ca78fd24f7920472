"""Max and average pooling (cnnlib.functional.pool) against the naive loops of cnnlib.reference,
PyTorch and numerical gradients: ties, padding, NaN, indices."""

import numpy as np
import pytest
import torch
import torch.nn.functional as T

from cnnlib import functional as F
from cnnlib import reference
from cnnlib.gradcheck import gradcheck

POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),  # overlapping windows
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=2, stride=3),  # stride larger than the window
    dict(kernel_size=3, stride=1),
    dict(kernel_size=4, stride=3, padding=2, ceil_mode=True),
]


@pytest.mark.parametrize("case", POOL_CASES + [
    dict(kernel_size=3, stride=2, dilation=2),
    dict(kernel_size=2, stride=1, padding=1, dilation=(2, 3), ceil_mode=True),
    # ceil mode keeps a window that reaches past the padded input (on 6x6: one window)
    dict(kernel_size=3, stride=4, padding=1, dilation=4, ceil_mode=True)])
def test_max_pool2d_matches_naive_torch_and_numerical_gradient(case):
    rng = np.random.default_rng(50)
    for shape in [(2, 3, 9, 8), (1, 2, 7, 11), (1, 1, 6, 6)]:
        x = rng.standard_normal(shape)
        y = F.max_pool2d(x, **case)
        np.testing.assert_array_equal(y, reference.max_pool2d_naive(x, **case))
        xt = torch.tensor(x, requires_grad=True)
        yt = T.max_pool2d(xt, **case)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(F.max_pool2d_backward(dy, x, **case), xt.grad.numpy(), atol=1e-14)
        y_i, indices = F.max_pool2d(x, **case, return_indices=True)
        np.testing.assert_array_equal(y_i, y)
        np.testing.assert_array_equal(indices, T.max_pool2d(xt, **case, return_indices=True)[1].numpy())
        np.testing.assert_allclose(F.max_pool2d_backward(dy, x, **case, indices=indices), xt.grad.numpy(),
                                   atol=1e-14)
        errors = gradcheck(lambda x: F.max_pool2d(x, **case), lambda dy, x: F.max_pool2d_backward(dy, x, **case), [x])
        assert errors[0] < 1e-7


def test_pooling_agrees_with_pytorch_on_random_problems():
    # Random windows, strides, dilations, paddings (some too large) and ceil mode on small inputs
    # with ties, -inf and NaN: the same values, indices and gradients, or an error from both.
    # Windows that hold only padding are the one refusal of cnnlib's own (see _pool).
    rng = np.random.default_rng(90)
    compared = 0
    for _ in range(600):
        k, s, d = (tuple(int(v) for v in rng.integers(1, hi, 2)) for hi in (5, 4, 3))
        pad = tuple(int(v) for v in rng.integers(0, np.array(k) // 2 + 2))
        ceil_mode, size = bool(rng.integers(2)), tuple(int(v) for v in rng.integers(1, 9, 2))
        x = rng.integers(-2, 3, (2, 2, *size)).astype(float)
        x[rng.random(x.shape) < 0.1] = rng.choice([np.nan, -np.inf])
        xt = torch.tensor(x, requires_grad=True)
        try:
            yt, it = T.max_pool2d(xt, k, s, pad, d, ceil_mode, return_indices=True)
        except RuntimeError:
            with pytest.raises(ValueError):
                F.max_pool2d(x, k, s, pad, d, ceil_mode)
            continue
        try:
            y, indices = F.max_pool2d(x, k, s, pad, d, ceil_mode, return_indices=True)
        except ValueError as error:  # PyTorch's answer there: -inf, at an index of some other pixel
            assert "holds only padding" in str(error) and np.isneginf(yt.detach().numpy()).any()
            continue
        dy = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(dy))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(indices, it.numpy())
        np.testing.assert_array_equal(F.max_pool2d_backward(dy, x, k, s, pad, d, ceil_mode), xt.grad.numpy())
        compared += 1
    assert compared > 150


def test_max_pool2d_ties_go_to_the_first_maximum_and_overlaps_accumulate():
    x = np.zeros((1, 1, 3, 3))
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, kernel_size=2, stride=1)
    # Every window is all zeros: each sends its gradient to its top-left pixel.
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    x = np.array([[[[0.0, 0, 0], [0, 5, 0], [0, 0, 0]]]])
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, kernel_size=2, stride=1)
    assert dx[0, 0, 1, 1] == 4  # the centre wins all four windows; their gradients add up


def test_max_pool2d_padding_never_wins():
    x = -np.ones((1, 1, 2, 2)) * np.array([[1, 2], [3, 4]])
    y = F.max_pool2d(x, kernel_size=2, stride=1, padding=1)
    assert np.all(np.isfinite(y)) and y[0, 0, 0, 0] == -1
    x = np.full((1, 1, 2, 2), -np.inf)
    dx = F.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, kernel_size=2, stride=1, padding=1)
    assert dx.sum() == 9  # all-minus-infinity windows still route to a real pixel, as in PyTorch
    xt = torch.tensor(x, requires_grad=True)
    T.max_pool2d(xt, 2, 1, 1).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    np.testing.assert_array_equal(F.max_pool2d(x, 2, 1, 1, return_indices=True)[1],
                                  T.max_pool2d(xt, 2, 1, 1, return_indices=True)[1].numpy())


@pytest.mark.parametrize("width, kernel", [(126, 2), (127, 2), (40, 4)])
def test_max_pool2d_indices_on_wide_planes_match_pytorch(width, kernel):
    """Window offsets are counted in int8 while they fit (the last tap of a 2x2 window on a
    126-wide plane sits 127 along) and in int32 beyond: both give PyTorch's indices."""
    x = np.random.default_rng(width).standard_normal((2, 3, 4, width)).round(1)  # with ties
    y, indices = F.max_pool2d(x, kernel, return_indices=True)
    yt, it = T.max_pool2d(torch.tensor(x), kernel, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(indices, it.numpy())
    assert indices.dtype == np.int64


def test_max_pool2d_backward_refuses_indices_that_do_not_fit():
    x, dy = np.zeros((1, 2, 4, 4)), np.ones((1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"indices must be integers of the output's shape \(1, 2, 2, 2\)"):
        F.max_pool2d_backward(dy, x, 2, indices=np.zeros((1, 2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 16\)"):
        F.max_pool2d_backward(dy, x, 2, indices=np.full((1, 2, 2, 2), 16))


@pytest.mark.parametrize("case", [dict(kernel_size=2), dict(kernel_size=2, stride=1, padding=1),
                                  dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_max_pool2d_nan_propagates_and_routes_gradient_like_pytorch(case):
    x = np.array([[[[1.0, np.nan, np.nan, 4.0], [2.0, np.nan, 0.0, 4.0], [5.0, 5.0, 1.0, np.nan],
                    [0.0, 3.0, 3.0, 2.0]]]])
    xt = torch.tensor(x, requires_grad=True)
    yt = T.max_pool2d(xt, **case)
    dy = np.arange(1.0, yt.numel() + 1).reshape(yt.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(F.max_pool2d(x, **case), yt.detach().numpy())  # NaN where torch has NaN
    np.testing.assert_array_equal(F.max_pool2d_backward(dy, x, **case), xt.grad.numpy())
    np.testing.assert_array_equal(F.max_pool2d(x, **case, return_indices=True)[1],
                                  T.max_pool2d(xt, **case, return_indices=True)[1].numpy())


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_naive_torch_and_numerical_gradient(case, count_include_pad):
    rng = np.random.default_rng(60)
    args = dict(case, count_include_pad=count_include_pad)
    for shape in [(2, 3, 9, 8), (1, 2, 7, 11)]:
        x = rng.standard_normal(shape)
        y = F.avg_pool2d(x, **args)
        np.testing.assert_allclose(y, reference.avg_pool2d_naive(x, **args), atol=1e-14)
        xt = torch.tensor(x, requires_grad=True)
        yt = T.avg_pool2d(xt, **args)
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-14)
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(F.avg_pool2d_backward(dy, x, **args), xt.grad.numpy(), atol=1e-14)
        errors = gradcheck(lambda x: F.avg_pool2d(x, **args), lambda dy, x: F.avg_pool2d_backward(dy, x, **args), [x])
        assert errors[0] < 1e-7
