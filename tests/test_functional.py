"""The rest of cnnlib.functional against PyTorch and numerical gradients (activations, linear,
global pooling, the loss), and the contract every functional op keeps: dtypes, and errors that
name the problem."""

import numpy as np
import pytest
import torch
import torch.nn.functional as T

from cnnlib import functional as F
from cnnlib.gradcheck import gradcheck


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


def test_type_errors_for_non_numeric_arguments():
    with pytest.raises(TypeError, match="stride must be an int"):
        F.conv2d(x4, w4, stride=1.5)
    with pytest.raises(TypeError, match="must hold numbers"):
        F.conv2d(np.array([["a"]]).reshape(1, 1, 1, 1), np.zeros((1, 1, 1, 1)))
