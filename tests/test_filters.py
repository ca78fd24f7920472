import numpy as np
import pytest
from scipy.signal import correlate2d

from cnnlib import filters
from cnnlib.data import synthetic_nine, synthetic_six

DIAGONAL = np.array(
    [[3, 1, 0, -1, -3], [1, 3, 1, 0, -1], [0, 1, 3, 1, 0], [-1, 0, 1, 3, 1], [-3, -1, 0, 1, 3]]
)


def test_fixed_kernels_have_the_classic_values():
    np.testing.assert_array_equal(filters.sharpen(), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_array_equal(filters.sobel_x(), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(filters.sobel_y(), [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(filters.emboss(), [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(filters.sobel_y(), filters.sobel_x().T)
    for kernel in (filters.sharpen(), filters.sobel_x(), filters.emboss(), filters.mean(3)):
        assert kernel.dtype == np.float64


def test_mean_kernel_is_uniform_and_sums_to_one():
    for k in (1, 3, 5, 4):
        kernel = filters.mean(k)
        assert kernel.shape == (k, k)
        np.testing.assert_allclose(kernel, 1 / k**2)
        assert kernel.sum() == pytest.approx(1.0)


def test_gaussian5_is_the_integer_kernel_over_273():
    integer = np.array(
        [
            [1, 4, 7, 4, 1],
            [4, 16, 26, 16, 4],
            [7, 26, 41, 26, 7],
            [4, 16, 26, 16, 4],
            [1, 4, 7, 4, 1],
        ]
    )
    assert integer.sum() == 273
    np.testing.assert_allclose(filters.gaussian5() * 273, integer)
    assert filters.gaussian5().sum() == pytest.approx(1.0)


def test_gaussian_sums_to_one_is_symmetric_and_peaks_in_the_centre():
    for size, sigma in ((3, 0.5), (5, 1.0), (7, 2.0), (9, 1.3)):
        g = filters.gaussian(size, sigma)
        assert g.shape == (size, size)
        assert g.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(g, g.T)
        np.testing.assert_allclose(g, g[::-1, ::-1])
        assert np.unravel_index(g.argmax(), g.shape) == (size // 2, size // 2)
    # The integer kernel is close to a sampled Gaussian with sigma just above 1.
    np.testing.assert_allclose(filters.gaussian(5, 1.05), filters.gaussian5(), atol=2e-3)


def test_gaussian_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        filters.gaussian(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian(5, 0.0)
    with pytest.raises(TypeError, match="size"):
        filters.gaussian(5.0, 1.0)


def test_identity_leaves_an_image_unchanged():
    image = np.random.default_rng(0).random((7, 9))
    for k in (1, 3, 5):
        np.testing.assert_array_equal(filters.apply(image, filters.identity(k)), image)
    with pytest.raises(ValueError, match="odd"):
        filters.identity(4)


def test_diagonal_edge_kernels_are_normalised_by_their_sum():
    assert DIAGONAL.sum() == 13
    np.testing.assert_allclose(filters.diagonal_edge_kernel(), DIAGONAL / 13)
    np.testing.assert_allclose(filters.rotated_diagonal_edge_kernel(), np.rot90(DIAGONAL) / 13)
    assert filters.diagonal_edge_kernel().sum() == pytest.approx(1.0)
    assert filters.rotated_diagonal_edge_kernel().sum() == pytest.approx(1.0)
    # The rotated kernel has its 3s on the anti-diagonal.
    np.testing.assert_allclose(np.fliplr(filters.rotated_diagonal_edge_kernel()).diagonal(), 3 / 13)


def test_sobel_x_finds_a_vertical_step_edge():
    image = np.zeros((8, 8))
    image[:, 4:] = 1.0
    gx = filters.apply(image, filters.sobel_x(), padding="valid")
    expected = np.zeros((6, 6))
    # Output column j sees input columns j..j+2; the step lies between columns 3 and 4.
    expected[:, 2:4] = 4.0
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(filters.apply(image, filters.sobel_y(), padding="valid"), 0.0)


def test_apply_matches_scipy_correlate2d():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((11, 13))
    for kernel in (filters.sobel_x(), filters.gaussian5(), rng.standard_normal((3, 5))):
        np.testing.assert_allclose(
            filters.apply(image, kernel, "valid"), correlate2d(image, kernel, mode="valid")
        )
        np.testing.assert_allclose(
            filters.apply(image, kernel, "same"), correlate2d(image, kernel, mode="same")
        )
    kernel = rng.standard_normal((3, 3))
    np.testing.assert_allclose(
        filters.apply(image, kernel, 2), correlate2d(np.pad(image, 2), kernel, mode="valid")
    )


# torch warns that it copies the input for an even kernel with 'same'; irrelevant here.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_apply_matches_torch_conv2d_including_even_same_padding():
    import torch
    rng = np.random.default_rng(2)
    image = rng.standard_normal((9, 10))
    for kernel in (rng.standard_normal((4, 4)), rng.standard_normal((2, 3)), filters.emboss()):
        for padding in ("same", "valid", 1):
            expected = torch.nn.functional.conv2d(
                torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None],
                padding=padding,
            )[0, 0].numpy()
            np.testing.assert_allclose(filters.apply(image, kernel, padding), expected)


def test_apply_filters_each_channel_separately():
    rng = np.random.default_rng(3)
    image = rng.random((6, 7, 3))
    out = filters.apply(image, filters.gaussian5())
    assert out.shape == (6, 7, 3)
    for c in range(3):
        np.testing.assert_allclose(out[:, :, c], filters.apply(image[:, :, c], filters.gaussian5()))


def test_apply_dtypes():
    assert filters.apply(np.ones((5, 5), dtype=np.uint8), filters.mean(3)).dtype == np.float64
    assert filters.apply(np.ones((5, 5), np.float32), filters.mean(3).astype(np.float32)).dtype == (
        np.float32
    )
    assert filters.apply(np.ones((5, 5), dtype=np.int64), np.ones((3, 3), int)).dtype == np.float64


def test_rotation_symmetric_kernel_responds_to_the_nine_as_to_the_rotated_six():
    # The diagonal kernel is unchanged by a 180-degree turn, and the 9 is the 6 turned by 180
    # degrees, so the response to the 9 is the response to the 6 turned by 180 degrees.
    kernel = filters.diagonal_edge_kernel()
    np.testing.assert_allclose(kernel, np.rot90(kernel, 2))
    six_response = filters.apply(synthetic_six(), kernel, "valid")
    nine_response = filters.apply(synthetic_nine(), kernel, "valid")
    assert six_response.shape == (24, 24)
    np.testing.assert_allclose(nine_response, np.rot90(six_response, 2), atol=1e-12)


def test_apply_rejects_bad_input():
    with pytest.raises(ValueError, match="image"):
        filters.apply(np.zeros((1, 2, 5, 5)), filters.mean(3))
    with pytest.raises(ValueError, match="kernel"):
        filters.apply(np.zeros((5, 5)), np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="padding"):
        filters.apply(np.zeros((5, 5)), filters.mean(3), padding="full")
    with pytest.raises(ValueError, match="padding"):
        filters.apply(np.zeros((5, 5)), filters.mean(3), padding=-1)
    with pytest.raises(TypeError, match="padding"):
        filters.apply(np.zeros((5, 5)), filters.mean(3), padding=1.5)
    with pytest.raises(ValueError, match="does not fit"):
        filters.apply(np.zeros((2, 5)), filters.mean(3), padding="valid")


def test_apply_equals_functional_conv2d_with_one_channel():
    from cnnlib import functional
    rng = np.random.default_rng(4)
    image = rng.standard_normal((9, 10))
    for kernel in (filters.sobel_x(), rng.standard_normal((4, 2))):
        for padding in ("same", "valid", 2):
            expected = functional.conv2d(image[None, None], kernel[None, None], padding=padding)
            np.testing.assert_allclose(filters.apply(image, kernel, padding), expected[0, 0])
