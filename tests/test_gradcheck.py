import numpy as np
import pytest

from cnnlib import filters
from cnnlib.gradcheck import check_gradient, gradcheck, numerical_gradient, relative_error


def test_numerical_gradient_of_a_quadratic():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v**2), x), 2 * x, atol=1e-8)


def test_numerical_gradient_restores_x_and_handles_views():
    base = np.random.default_rng(1).standard_normal((4, 3))
    x = base.T  # not C-contiguous
    before = x.copy()
    a = np.arange(12.0).reshape(3, 4)
    grad = numerical_gradient(lambda v: np.sum(a * v), x)
    np.testing.assert_allclose(grad, a, atol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_restores_x_when_f_fails():
    x = np.ones(3)

    def f(v):
        if v[0] != 1.0:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, 1.0)


def test_numerical_gradient_rejects_bad_input():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(np.sum, np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(np.sum, [1.0, 2.0])
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda v: v * 2, np.ones(3))
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(np.sum, np.ones(3), eps=0)


def test_relative_error():
    a = np.array([1.0, -2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == 1.0
    assert relative_error(a, a + [0, 0, 0.6]) == pytest.approx(0.6 / 6.6)
    # Scale invariant: the same relative mistake at any magnitude gives the same error.
    assert relative_error(1e-9 * a, 1e-9 * (a + [0, 0, 0.6])) == pytest.approx(0.6 / 6.6)
    with pytest.raises(ValueError, match="shape"):
        relative_error(np.zeros(2), np.zeros(3))


def test_check_gradient_accepts_right_and_rejects_wrong_gradients():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(5)

    def f(v):
        return np.sum(np.tanh(v))

    right = 1 - np.tanh(x) ** 2
    assert check_gradient(f, x, right) < 1e-8
    assert check_gradient(f, x, 1 - np.tanh(x)) > 1e-2
    with pytest.raises(ValueError, match="shape"):
        check_gradient(f, x, right[:4])


def test_gradcheck_matmul():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    errors = gradcheck(lambda x, w: x @ w, lambda dy, x, w: (dy @ w.T, x.T @ dy), [x, w])
    assert len(errors) == 2 and max(errors) < 1e-8
    wrong = gradcheck(lambda x, w: x @ w, lambda dy, x, w: (dy @ w.T, 2 * x.T @ dy), [x, w])
    assert wrong[0] < 1e-8 and wrong[1] > 0.1


def test_gradcheck_catches_errors_a_sum_would_hide():
    x = np.random.default_rng(4).standard_normal(6)
    # With dy = ones, forgetting to reverse dy would still give the right answer.
    assert gradcheck(lambda v: v[::-1], lambda dy, v: dy[::-1], [x])[0] < 1e-8
    assert gradcheck(lambda v: v[::-1], lambda dy, v: dy, [x])[0] > 0.1


def test_gradcheck_of_filter_apply():
    # d(image) is the full convolution of dy with the kernel (correlation with the flipped
    # kernel and k - 1 zeros of padding); d(kernel) is the correlation of image with dy.
    rng = np.random.default_rng(5)
    image, kernel = rng.standard_normal((7, 6)), rng.standard_normal((3, 3))

    def forward(image, kernel):
        return filters.apply(image, kernel, padding="valid")

    def backward(dy, image, kernel):
        return filters.apply(dy, kernel[::-1, ::-1], padding=2), filters.apply(image, dy, "valid")

    assert max(gradcheck(forward, backward, [image, kernel])) < 1e-8


def test_gradcheck_skips_none_gradients_and_checks_counts():
    rng = np.random.default_rng(6)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])

    def forward(z, y):
        return z[np.arange(len(y)), y]

    def backward(dy, z, y):
        dz = np.zeros_like(z)
        dz[np.arange(len(y)), y] = dy
        return dz, None

    errors = gradcheck(forward, backward, [logits, labels])
    assert errors[0] < 1e-8 and errors[1] is None
    with pytest.raises(ValueError, match="1 gradients for 2 inputs"):
        gradcheck(forward, lambda dy, z, y: backward(dy, z, y)[0], [logits, labels])
    with pytest.raises(ValueError, match="shape"):
        gradcheck(lambda v: 2 * v, lambda dy, v: dy[:2], [np.ones(3)])


def test_gradcheck_agrees_with_torch_autograd():
    import torch
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5))

    def forward(v):
        return np.log1p(np.exp(v))  # softplus

    def backward(dy, v):
        return dy / (1 + np.exp(-v))

    assert gradcheck(forward, backward, [x])[0] < 1e-8
    t = torch.tensor(x, requires_grad=True)
    dy = np.random.default_rng(0).standard_normal(x.shape)  # the dy gradcheck uses for seed 0
    torch.nn.functional.softplus(t).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(backward(dy, x), t.grad.numpy(), rtol=1e-12)
