"""Convolution and its transpose (cnnlib.functional.conv) against independent oracles: SciPy's
correlate, the naive loops of cnnlib.reference, PyTorch and numerical gradients; and the memory
they hold."""
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
