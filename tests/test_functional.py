"""cnnlib.functional against independent oracles: SciPy's correlate, the naive loops of
cnnlib.reference, PyTorch, and numerical gradients."""
import itertools

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as T

from cnnlib import functional as F
from cnnlib import im2col as im2col_module
from cnnlib import reference
from cnnlib.functional import _shifted as shifted_module
from cnnlib.functional import conv as conv_module
from cnnlib.gradcheck import gradcheck

CONV = {1: (F.conv1d, F.conv1d_backward, T.conv1d),
        2: (F.conv2d, F.conv2d_backward, T.conv2d),
        3: (F.conv3d, F.conv3d_backward, T.conv3d)}


def random_conv_case(rng, nd, small=False):
    """A random valid convolution problem in nd spatial dimensions."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
        size = tuple(int(n) for n in rng.integers(3, 6 if small or nd == 3 else 10, nd))
        choice = rng.integers(0, 4)
        if choice == 0:
            padding = int(rng.integers(0, 3))
        elif choice == 1:
            padding = tuple(int(p) for p in rng.integers(0, 3, nd))
        elif choice == 2:
            padding, stride = "same", (1,) * nd
        else:
            padding = "valid"
        pads = padding_pairs(padding, kernel, dilation, nd)
        if all(n + a + b >= d * (k - 1) + 1 for n, (a, b), k, d in zip(size, pads, kernel, dilation)):
            break
    x = rng.standard_normal((int(rng.integers(1, 3)), c_in, *size))
    w = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal(c_out) if rng.random() < 0.7 else None
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def padding_pairs(padding, kernel, dilation, nd):
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    padding = (padding,) * nd if isinstance(padding, int) else padding
    return [(p, p) for p in padding]


def scipy_conv(x, w, b, stride, padding, dilation, groups):
    """Oracle: per (sample, output channel), sum of scipy.signal.correlate over the group's input
    channels, with the kernel dilated by inserting zeros and the output subsampled by the stride."""
    nd = x.ndim - 2
    pads = padding_pairs(padding, w.shape[2:], dilation, nd)
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    c_out, c_group = w.shape[:2]
    outputs = []
    for n in range(x.shape[0]):
        maps = []
        for o in range(c_out):
            first = o // (c_out // groups) * c_group
            acc = 0
            for c in range(c_group):
                k = np.zeros([d * (s - 1) + 1 for s, d in zip(w.shape[2:], dilation)])
                k[tuple(slice(None, None, d) for d in dilation)] = w[o, c]
                acc = acc + scipy.signal.correlate(xp[n, first + c], k, mode="valid")
            acc = acc[tuple(slice(None, None, s) for s in stride)]
            maps.append(acc + (0 if b is None else b[o]))
        outputs.append(maps)
    return np.array(outputs)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch notes its own internal copy
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_forward_matches_scipy_and_torch(nd):
    rng = np.random.default_rng(nd)
    forward, _, torch_forward = CONV[nd]
    for _ in range(60 if nd < 3 else 25):
        x, w, b, args = random_conv_case(rng, nd)
        y = forward(x, w, b, **args)
        np.testing.assert_allclose(y, scipy_conv(x, w, b, **args), atol=1e-12, err_msg=str(args))
        expected = torch_forward(torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **args)
        np.testing.assert_allclose(y, expected.numpy(), atol=1e-12, err_msg=str(args))


def test_conv2d_matches_naive_loops():
    rng = np.random.default_rng(7)
    for _ in range(40):
        x, w, b, args = random_conv_case(rng, 2, small=True)
        if isinstance(args["padding"], str):
            continue
        np.testing.assert_allclose(F.conv2d(x, w, b, **args), reference.conv2d_naive(x, w, b, **args),
                                   atol=1e-12, err_msg=str(args))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_backward_matches_numerical_gradient(nd):
    rng = np.random.default_rng(10 + nd)
    forward, backward, _ = CONV[nd]
    for _ in range(12 if nd < 3 else 5):
        x, w, b, args = random_conv_case(rng, nd, small=True)
        b = rng.standard_normal(w.shape[0])
        errors = gradcheck(lambda x, w, b: forward(x, w, b, **args),
                           lambda dy, x, w, b: backward(dy, x, w, **args), [x, w, b])
        assert max(errors) < 1e-7, (args, errors)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_backward_matches_torch(nd):
    rng = np.random.default_rng(20 + nd)
    forward, backward, torch_forward = CONV[nd]
    for _ in range(20):
        x, w, b, args = random_conv_case(rng, nd)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        bt = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
        y = torch_forward(xt, wt, bt, **args)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        dx, dw, db = backward(dy, x, w, **args)
        for ours, theirs in ((dx, xt), (dw, wt), (db, bt)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-11, err_msg=str(args))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_columns_built_a_few_samples_at_a_time_change_nothing(nd, monkeypatch):
    """Large batches are convolved in slices (SLICE_BYTES); force one sample per slice."""
    monkeypatch.setattr(im2col_module, "SLICE_BYTES", (1, 1))
    rng = np.random.default_rng(50 + nd)
    forward, backward, torch_forward = CONV[nd]
    for _ in range(8):
        x, w, b, args = random_conv_case(rng, nd, small=True)
        x = rng.standard_normal((3, *x.shape[1:]))
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        y = torch_forward(xt, wt, None, **args)
        np.testing.assert_allclose(forward(x, w, None, **args), y.detach().numpy(), atol=1e-12)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        dx, dw, _ = backward(dy, x, w, **args)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-11, err_msg=str(args))
        np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-11, err_msg=str(args))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shifted_per_sample_and_im2col_convolutions_agree_with_torch_on_the_same_inputs(nd, dtype, monkeypatch):
    """conv.py picks the algorithm by shape (SAMPLE_GEMM_INNER, SAMPLE_SCATTER_INNER,
    SHIFTED_MIN_CHANNELS, SHIFTED_MIN_POSITIONS): force each in turn, and sum the shifted one
    sample at a time (SHIFTED_BYTES) too; the backward's input gradient (a transposed
    convolution) and weight gradient take the per-sample, shifted and im2col paths."""
    monkeypatch.setattr(conv_module, "SHIFTED_MIN_POSITIONS", 1)
    rng = np.random.default_rng(60 + nd)
    forward, backward, torch_forward = CONV[nd]
    atol = 1e-4 if dtype == np.float32 else 1e-12
    for _ in range(15):
        x, w, b, args = random_conv_case(rng, nd, small=True)
        args["stride"] = 1 if args["padding"] != "same" and rng.random() < 0.7 else args["stride"]
        x, w = x.astype(dtype), w.astype(dtype)
        b = None if b is None else b.astype(dtype)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        expected = torch_forward(xt, wt, None if b is None else torch.tensor(b), **args)
        expected.sum().backward()
        expected, expected_dx, expected_dw = expected.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()
        for inner, min_channels, sample_bytes in ((0, 1, 1 << 20), (0, 1, 1), (0, 10 ** 9, 1 << 20),
                                                  (10 ** 9, 10 ** 9, 1 << 20)):
            monkeypatch.setattr(conv_module, "SAMPLE_GEMM_INNER", inner)
            monkeypatch.setattr(conv_module, "SAMPLE_SCATTER_INNER", inner)
            monkeypatch.setattr(conv_module, "SAMPLE_GEMM_MIN_OUT", 1)
            monkeypatch.setattr(conv_module, "SHIFTED_MIN_CHANNELS", min_channels)
            monkeypatch.setattr(shifted_module, "SHIFTED_BYTES", sample_bytes)
            y = forward(x, w, b, **args)
            assert y.dtype == dtype
            np.testing.assert_allclose(y, expected, atol=atol, err_msg=str(args))
            dx, dw, _ = backward(np.ones_like(y), x, w, **args)
            np.testing.assert_allclose(dx, expected_dx, atol=atol * 10, err_msg=str(args))
            np.testing.assert_allclose(dw, expected_dw, atol=atol * 10, err_msg=str(args))


def random_transpose_case(rng):
    groups = int(rng.choice([1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    stride = tuple(int(s) for s in rng.integers(1, 4, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    padding = tuple(int(rng.integers(0, k)) for k in kernel)
    x = rng.standard_normal((int(rng.integers(1, 3)), c_in, *rng.integers(2, 6, 2)))
    w = rng.standard_normal((c_in, c_out // groups, *kernel))
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return x, w, rng.standard_normal(c_out), args


@pytest.mark.parametrize("per_sample", [False, True])
def test_conv_transpose2d_matches_torch_forward_and_backward(per_sample, monkeypatch):
    """Both ways a transposed convolution (and the input gradient) is computed: from im2col
    columns, and one product per sample (forced here; chosen for short inner products)."""
    for limit in ("SAMPLE_GEMM_INNER", "SAMPLE_SCATTER_INNER"):
        monkeypatch.setattr(conv_module, limit, 10 ** 9 if per_sample else 0)
    monkeypatch.setattr(conv_module, "SAMPLE_GEMM_MIN_OUT", 1)
    rng = np.random.default_rng(30)
    checked = 0
    while checked < 40:
        x, w, b, args = random_transpose_case(rng)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        try:
            y = T.conv_transpose2d(xt, wt, bt, **args)
        except RuntimeError:  # padding crops everything away: cnnlib must refuse it too
            with pytest.raises(ValueError, match="output size"):
                F.conv_transpose2d(x, w, b, **args)
            continue
        np.testing.assert_allclose(F.conv_transpose2d(x, w, b, **args), y.detach().numpy(), atol=1e-12)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        for ours, theirs in zip(F.conv_transpose2d_backward(dy, x, w, **args), (xt, wt, bt)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-11, err_msg=str(args))
        checked += 1


def test_conv_transpose2d_backward_matches_numerical_gradient():
    rng = np.random.default_rng(31)
    for _ in range(10):
        x, w, b, args = random_transpose_case(rng)
        try:
            F.conv_transpose2d(x, w, b, **args)
        except ValueError:
            continue
        errors = gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **args),
                           lambda dy, x, w, b: F.conv_transpose2d_backward(dy, x, w, **args), [x, w, b])
        assert max(errors) < 1e-7, (args, errors)


def test_transposed_convolution_is_the_input_gradient_of_convolution():
    rng = np.random.default_rng(40)
    for stride, padding, dilation, groups in itertools.product([1, 2, 3], [0, 1, 2], [1, 2], [1, 2]):
        x = rng.standard_normal((2, 4, 11, 10))
        w = rng.standard_normal((6, 4 // groups, 3, 3))
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        y = F.conv2d(x, w, **args)
        dy = rng.standard_normal(y.shape)
        dx, _, _ = F.conv2d_backward(dy, x, w, **args)
        # output_padding recovers the rows a strided convolution dropped at the end.
        extra = [n - ((o - 1) * stride - 2 * padding + dilation * 2 + 1) for n, o in zip(x.shape[2:], y.shape[2:])]
        np.testing.assert_allclose(F.conv_transpose2d(dy, w, stride=stride, padding=padding,
                                                      output_padding=tuple(extra), groups=groups,
                                                      dilation=dilation), dx, atol=1e-12)
        # Adjointness: <conv(x), dy> == <x, conv^T(dy)>.
        assert np.isclose(np.sum(y * dy), np.sum(x * dx))


def test_up_convolution_is_zero_insertion_then_convolution():
    rng = np.random.default_rng(41)
    for stride, padding, k in itertools.product([1, 2, 3], [0, 1, 2], [2, 3, 4]):
        if padding > k - 1:
            continue
        x = rng.standard_normal((1, 1, 4, 5))
        w = rng.standard_normal((1, 1, k, k))
        dilated = np.zeros((1, 1, (4 - 1) * stride + 1, (5 - 1) * stride + 1))
        dilated[:, :, ::stride, ::stride] = x
        edge = k - 1 - padding
        manual = F.conv2d(np.pad(dilated, ((0, 0), (0, 0), (edge, edge), (edge, edge))), w[:, :, ::-1, ::-1])
        np.testing.assert_allclose(F.conv_transpose2d(x, w, stride=stride, padding=padding), manual, atol=1e-12)


def test_seed_up_convolution_example():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    k = np.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])
    expected = np.array([[1.0, 0, 2], [0, 10, 0], [3, 0, 4]])
    up = F.conv_transpose2d(a[None, None], k[None, None], stride=2, padding=1)
    np.testing.assert_array_equal(up[0, 0], expected)


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


def test_relu_backward_keeps_nonfinite_gradients_only_where_x_is_positive():
    x = np.array([[-1.0, 0.0, 2.0, -3.0, 4.0, np.nan]], dtype=np.float32)
    dy = np.array([[np.nan, np.inf, np.nan, -np.inf, 1.5, 2.0]], dtype=np.float32)
    xt = torch.tensor(x, requires_grad=True)
    T.relu(xt).backward(torch.tensor(dy))
    ours = F.relu_backward(dy, x)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, xt.grad.numpy())  # [0, 0, nan, 0, 1.5, 2]: a NaN x passes dy


def test_global_avg_pool_linear_activations_and_loss_gradients():
    rng = np.random.default_rng(70)
    x = rng.standard_normal((3, 4, 5, 6))
    np.testing.assert_allclose(F.global_avg_pool2d(x), T.adaptive_avg_pool2d(torch.tensor(x), 1).numpy()[:, :, 0, 0])
    assert gradcheck(F.global_avg_pool2d, F.global_avg_pool2d_backward, [x])[0] < 1e-7
    a, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    np.testing.assert_allclose(F.linear(a, w, b), T.linear(*map(torch.tensor, (a, w, b))).numpy())
    assert max(gradcheck(F.linear, lambda dy, a, w, b: F.linear_backward(dy, a, w), [a, w, b])) < 1e-7
    z = rng.standard_normal((4, 6)) * 3
    z[0, 0] = 0.0
    for name, theirs in [("relu", T.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                         ("leaky_relu", T.leaky_relu)]:
        forward, backward = getattr(F, name), getattr(F, name + "_backward")
        np.testing.assert_allclose(forward(z), theirs(torch.tensor(z)).numpy(), atol=1e-15)
        zt = torch.tensor(z, requires_grad=True)
        dy = rng.standard_normal(z.shape)
        theirs(zt).backward(torch.tensor(dy))
        np.testing.assert_allclose(backward(dy, z), zt.grad.numpy(), atol=1e-15)  # includes x == 0
    smooth = z + 0.5 * np.sign(z) + (z == 0)  # keep away from the ReLU kink for finite differences
    for name in ("relu", "sigmoid", "tanh", "leaky_relu"):
        assert gradcheck(getattr(F, name), getattr(F, name + "_backward"), [smooth])[0] < 1e-7
    assert np.all(np.isfinite(F.sigmoid(np.array([-1000.0, 1000.0]))))
    labels = rng.integers(0, 6, 4)
    expected = T.cross_entropy(torch.tensor(z), torch.tensor(labels)).item()
    assert np.isclose(F.cross_entropy(z, labels), expected, atol=1e-14)
    numerical = gradcheck(lambda z: np.array(F.cross_entropy(z, labels)),
                          lambda dy, z: dy * F.cross_entropy_backward(z, labels), [z])
    assert numerical[0] < 1e-7
    np.testing.assert_allclose(F.softmax(z).sum(axis=1), 1)
    assert np.isfinite(F.cross_entropy(np.array([[1000.0, -1000.0]]), np.array([1])))


@pytest.mark.parametrize("op,args", [
    (F.conv2d, (np.zeros((1, 2, 5, 5), np.float32), np.zeros((3, 2, 3, 3), np.float32), np.zeros(3, np.float32))),
    (F.conv1d, (np.zeros((1, 2, 5), np.float32), np.zeros((3, 2, 3), np.float32))),
    (F.conv3d, (np.zeros((1, 2, 4, 4, 4), np.float32), np.zeros((3, 2, 3, 3, 3), np.float32))),
    (F.conv_transpose2d, (np.zeros((1, 2, 5, 5), np.float32), np.zeros((2, 3, 3, 3), np.float32))),
    (F.max_pool2d, (np.zeros((1, 2, 5, 5), np.float32), 2)),
    (F.avg_pool2d, (np.zeros((1, 2, 5, 5), np.float32), 2)),
    (F.global_avg_pool2d, (np.zeros((1, 2, 5, 5), np.float32),)),
    (F.linear, (np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32))),
    (F.relu, (np.zeros(3, np.float32),)),
    (F.sigmoid, (np.zeros(3, np.float32),)),
])
def test_float32_in_gives_float32_out(op, args):
    assert op(*args).dtype == np.float32


def test_backward_keeps_float32():
    rng = np.random.default_rng(80)
    x, w = rng.standard_normal((2, 3, 6, 6)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = np.ones((2, 4, 4, 4), np.float32)
    assert all(g.dtype == np.float32 for g in F.conv2d_backward(dy, x, w))
    assert F.max_pool2d_backward(np.ones((2, 3, 3, 3), np.float32), x, 2).dtype == np.float32
    assert F.avg_pool2d_backward(np.ones((2, 3, 3, 3), np.float32), x, 2).dtype == np.float32


x4, w4 = np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3))


@pytest.mark.parametrize("call,message", [
    (lambda: F.conv2d(np.zeros((3, 5, 5)), w4), r"4-D .*got shape \(3, 5, 5\)"),
    (lambda: F.conv2d(x4, np.zeros((2, 3, 3))), r"weight must be 4-D"),
    (lambda: F.conv2d(x4, np.zeros((2, 2, 3, 3))), r"x has 3 channels but weight of shape \(2, 2, 3, 3\)"),
    (lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3)), groups=2), r"groups=2 must divide"),
    (lambda: F.conv2d(x4, np.zeros((2, 3, 7, 3))), r"larger than the padded input \(5, 5\)"),
    (lambda: F.conv2d(x4, w4, stride=0), r"stride must be positive"),
    (lambda: F.conv2d(x4, w4, padding=-1), r"padding must be non-negative"),
    (lambda: F.conv2d(x4, w4, padding=(1, 1, 1)), r"padding needs 2 values"),
    (lambda: F.conv2d(x4, w4, padding="same", stride=2), r"'same' requires stride 1"),
    (lambda: F.conv2d(x4, w4, padding="full"), r"padding must be"),
    (lambda: F.conv2d(x4, w4, dilation=0), r"dilation must be positive"),
    (lambda: F.conv2d(x4, w4, np.zeros(3)), r"bias must have shape \(2,\)"),
    (lambda: F.conv2d_backward(np.zeros((1, 2, 4, 4)), x4, w4), r"dy must have the output's shape \(1, 2, 3, 3\)"),
    (lambda: F.conv_transpose2d(x4, np.zeros((2, 3, 3, 3))), r"x has 3 channels"),
    (lambda: F.conv_transpose2d(x4, np.zeros((3, 1, 3, 3)), stride=2, output_padding=2), r"output_padding"),
    (lambda: F.max_pool2d(x4, 3, padding=2), r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
    (lambda: F.max_pool2d(x4, 7), r"larger than the padded input"),
    (lambda: F.max_pool2d(x4, 2, stride=-1), r"stride must be positive"),
    (lambda: F.avg_pool2d(x4, 2, padding=-1), r"padding must be non-negative"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 3, 3, 3)), x4, 2), r"dy must have the output's shape \(1, 3, 2, 2\)"),
    (lambda: F.linear(np.zeros((2, 3)), np.zeros((4, 5))), r"x has 3 features but weight of shape \(4, 5\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), r"labels must lie in \[0, 3\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), r"labels must be 2 integers"),
    (lambda: F.relu_backward(np.zeros(3), np.zeros(4)), r"dy has shape \(3,\) but x has shape \(4,\)"),
    # Empty axes PyTorch refuses too (before: a bare reshape error, a ZeroDivisionError, or zeros).
    (lambda: F.conv2d(x4, np.zeros((2, 3, 0, 3))), r"weight of shape \(2, 3, 0, 3\) has an empty axis"),
    (lambda: F.conv1d(np.zeros((1, 3, 5)), np.zeros((2, 3, 0))), r"weight of shape \(2, 3, 0\) has an empty axis"),
    (lambda: F.conv2d(x4, np.zeros((0, 3, 3, 3))), r"weight of shape \(0, 3, 3, 3\) has an empty axis"),
    (lambda: F.conv2d(np.zeros((1, 3, 0, 5)), w4, padding=2), r"x of shape \(1, 3, 0, 5\) has an empty spatial axis"),
    (lambda: F.conv_transpose2d(np.zeros((1, 3, 0, 5)), np.zeros((3, 2, 3, 3))), r"empty spatial axis"),
    (lambda: F.max_pool2d(np.zeros((2, 0, 5, 5)), 2), r"x of shape \(2, 0, 5, 5\) has an empty axis"),
    (lambda: F.avg_pool2d(np.zeros((2, 3, 5, 0)), 1), r"has an empty axis"),
    # PyTorch gives -inf and an index outside the plane here, and its backward writes past the input.
    (lambda: F.max_pool2d(np.zeros((1, 1, 1, 1)), 2, stride=1, padding=1, dilation=2),
     r"a window holds only padding"),
])
def test_bad_input_raises_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("c_in,c_out", [(3, 4), (1, 16), (64, 64)])  # im2col, per sample, shifted views
def test_an_empty_batch_goes_forward_and_backward(c_in, c_out):
    # As in PyTorch: empty outputs and input gradients, zero weight and bias gradients.
    x, w = np.zeros((0, c_in, 16, 16)), np.ones((c_out, c_in, 3, 3))
    y = F.conv2d(x, w, np.ones(c_out), padding=1)
    dx, dw, db = F.conv2d_backward(np.zeros(y.shape), x, w, padding=1)
    assert y.shape == (0, c_out, 16, 16) and dx.shape == x.shape
    assert dw.shape == w.shape and db.shape == (c_out,) and not dw.any() and not db.any()
    z = F.conv_transpose2d(y, w, padding=1)
    dz, dw, db = F.conv_transpose2d_backward(np.zeros(z.shape), y, w, padding=1)
    assert z.shape == x.shape and dz.shape == y.shape and dw.shape == w.shape and not dw.any()


def test_type_errors_for_non_numeric_arguments():
    with pytest.raises(TypeError, match="stride must be an int"):
        F.conv2d(x4, w4, stride=1.5)
    with pytest.raises(TypeError, match="must hold numbers"):
        F.conv2d(np.array([["a"]]).reshape(1, 1, 1, 1), np.zeros((1, 1, 1, 1)))


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


@pytest.mark.parametrize("c_in, c_out, size, kernel, stride, groups", [
    (32, 128, 16, 3, 1, 1),   # im2col, stride 1
    (1, 32, 28, 5, 1, 1),     # one input channel
    (16, 16, 32, 3, 2, 1),    # strided
    (16, 16, 32, 3, 1, 16),   # depthwise
])
def test_a_convolution_holds_at_most_twice_its_input_and_output(c_in, c_out, size, kernel, stride, groups):
    """Issue 13's memory target, on problems above SLICE_BYTES' floor: tracemalloc's peak
    during one call (results included) over the bytes of its arrays, forward and backward."""
    from cnnlib.bench import peak_bytes
    rng = np.random.default_rng(7)
    x = rng.standard_normal((32, c_in, size, size), dtype=np.float32)
    w = rng.standard_normal((c_out, c_in // groups, kernel, kernel), dtype=np.float32)
    args = dict(stride=stride, padding=kernel // 2, groups=groups)
    y = F.conv2d(x, w, **args)
    assert x.nbytes + y.nbytes > im2col_module.SLICE_BYTES[0]
    assert peak_bytes(lambda: F.conv2d(x, w, **args)) <= 2 * (x.nbytes + w.nbytes + y.nbytes)
    dy = np.ones_like(y)
    grads = F.conv2d_backward(dy, x, w, **args)
    io = dy.nbytes + x.nbytes + w.nbytes + sum(g.nbytes for g in grads)
    assert peak_bytes(lambda: F.conv2d_backward(dy, x, w, **args)) <= 2 * io


@pytest.mark.parametrize("n, sample_bytes, budget", [(64, 258, 16_000), (7, 10, 30), (5, 100, 1), (1, 5, 100)])
def test_batch_slices_cover_the_batch_in_as_few_near_equal_slices_as_fit(n, sample_bytes, budget):
    slices = im2col_module.even_batches(n, sample_bytes, budget)
    sizes = [s.stop - s.start for s in slices]
    assert [s.start for s in slices] == [0, *np.cumsum(sizes)[:-1]] and sum(sizes) == n
    per = max(1, budget // sample_bytes)
    assert max(sizes) <= per and len(slices) == -(-n // per) and max(sizes) - min(sizes) <= 1


def test_repeated_convolutions_reuse_freed_memory_instead_of_faulting_in_fresh_pages():
    """A training loop calls the same convolution again and again. Its scratch must come from
    memory the previous call freed: each fresh 4 KiB page costs a fault (about 1.5 us on the
    course's machine), and glibc's default thresholds cost the bench's 64->64 32x32 forward 2,249
    of them per call, 1.34x its time."""
    import resource

    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    for stride in (1, 2):
        dy_s = dy[:, :, ::stride, ::stride].copy()

        def step():
            F.conv2d(x, w, stride=stride, padding=1)
            F.conv2d_backward(dy_s, x, w, stride=stride, padding=1)
        step()  # the first call may take fresh pages
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            step()
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
        assert faults < 64, f"stride {stride}: {faults:.0f} page faults per forward and backward"
