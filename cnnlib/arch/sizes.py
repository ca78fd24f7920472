"""Sizes and costs of one layer: output size, exact tiling, receptive field, parameters,
MACs and activation memory."""
from __future__ import annotations

import math
import operator
from typing import Iterable, Sequence

from .._params import window_count


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _chw(shape, name: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), got {tuple(shape)}")
    return tuple(_int(s, name, 1) for s in shape)


def output_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling along one axis, PyTorch's formula.

    out = floor((n + 2p - d (k - 1) - 1) / s) + 1. With ceil_mode the division
    rounds up, except that a window starting beyond the input and its left
    padding is dropped (PyTorch's pooling rule).

    Inputs:
    - n: input length (>= 1).
    - kernel: window length k (>= 1).
    - stride: step s between windows (>= 1).
    - padding: zeros p added on each side (>= 0).
    - dilation: spacing d between window taps (>= 1).
    - ceil_mode: round up instead of down (pooling layers only in PyTorch).

    Returns:
    - out: number of window positions, an int >= 1.
    """
    n, kernel, stride, padding, dilation = (
        _int(n, "n", 1), _int(kernel, "kernel", 1), _int(stride, "stride", 1),
        _int(padding, "padding", 0), _int(dilation, "dilation", 1),
    )
    out = window_count(n, (padding, padding), kernel, stride, dilation, ceil_mode)
    if out < 1:
        raise ValueError(
            f"kernel {kernel} (dilation {dilation}, extent {dilation * (kernel - 1) + 1}) "
            f"does not fit input {n} with padding {padding}"
        )
    return out


def fits(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> bool:
    """Whether the windows tile the padded input exactly, with no leftover pixels.

    True when (n + 2p - d (k - 1) - 1) is divisible by s; otherwise the floor in
    `output_size` silently ignores the last (n + 2p - d(k-1) - 1) mod s pixels.

    Inputs: as in `output_size`.

    Returns:
    - fits: bool.
    """
    out = output_size(n, kernel, stride, padding, dilation)  # checks the arguments
    # Exact tiling: the last window ends on the last pixel of the padded input.
    return (out - 1) * stride + dilation * (kernel - 1) + 1 == n + 2 * padding


def receptive_field(layers: Iterable[Sequence[int]]) -> tuple[int, int]:
    """Receptive field and jump of a stack of convolution/pooling layers.

    R = 1 + sum_l (k_l - 1) d_l prod_{i<l} s_i, and the jump (the input distance
    between two neighbouring output pixels) is prod_l s_l. Padding moves the
    field but does not change its size.

    Inputs:
    - layers: sequence of (kernel, stride) or (kernel, stride, dilation) tuples,
      first layer first.

    Returns a tuple of:
    - size: receptive field R of one output pixel, in input pixels.
    - jump: product of all strides.
    """
    size, jump = 1, 1
    for i, layer in enumerate(layers):
        if len(layer) not in (2, 3):
            raise ValueError(
                f"layers[{i}] must be (kernel, stride) or (kernel, stride, dilation), got {layer!r}"
            )
        kernel = _int(layer[0], f"layers[{i}] kernel", 1)
        stride = _int(layer[1], f"layers[{i}] stride", 1)
        dilation = _int(layer[2], f"layers[{i}] dilation", 1) if len(layer) == 3 else 1
        size += (kernel - 1) * dilation * jump
        jump *= stride
    return size, jump


def conv_params(
    in_channels: int, out_channels: int, kernel: int, groups: int = 1, bias: bool = True
) -> int:
    """Learnable parameters of a square convolution with shared weights.

    Inputs:
    - in_channels, out_channels: C_in and C_out, both divisible by `groups`.
    - kernel: side k of the square kernel.
    - groups: number of channel groups; each filter sees C_in / groups channels.
    - bias: whether each filter has a bias.

    Returns:
    - params: C_out * (C_in / groups) * k * k + (C_out if bias else 0).
    """
    in_channels = _int(in_channels, "in_channels", 1)
    out_channels = _int(out_channels, "out_channels", 1)
    kernel = _int(kernel, "kernel", 1)
    groups = _int(groups, "groups", 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"in_channels {in_channels} and out_channels {out_channels} must both be "
            f"divisible by groups {groups}"
        )
    return out_channels * (in_channels // groups) * kernel * kernel + (out_channels if bias else 0)


def conv_macs(
    in_shape: tuple[int, int, int],
    out_channels: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> int:
    """Exact multiply-accumulates of one square convolution on one image.

    Every output value is a dot product of length (C_in / groups) * k * k; the bias
    addition is not counted.

    Inputs:
    - in_shape: input shape (C_in, H, W).
    - out_channels, kernel, stride, padding, groups: the layer's hyperparameters.

    Returns:
    - macs: C_out * H_out * W_out * (C_in / groups) * k * k.
    """
    c_in, height, width = _chw(in_shape, "in_shape")
    weights = conv_params(c_in, out_channels, kernel, groups, bias=False)
    return weights * output_size(height, kernel, stride, padding) * output_size(
        width, kernel, stride, padding
    )


def approx_conv_macs(
    kernel: int, height: int, width: int, stride: int, in_channels: int, out_channels: int
) -> float:
    """The back-of-the-envelope cost (K * K) * (H * W) / (s * s) * C_in * C_out.

    It treats the output as exactly (H / s) x (W / s), which `conv_macs` matches
    only when the padding makes output_size(H) == H / s.

    Inputs:
    - kernel: side K of the square kernel.
    - height, width: input size H x W.
    - stride: s.
    - in_channels, out_channels: C_in and C_out.

    Returns:
    - macs: the estimate, a float because H * W / s^2 need not be whole.
    """
    return kernel * kernel * (height * width) / (stride * stride) * in_channels * out_channels


def unshared_params(
    out_shape: tuple[int, int, int], kernel: int, in_channels: int, bias: bool = True
) -> int:
    """Parameters of a layer whose every output neuron has its own weights (no sharing).

    Inputs:
    - out_shape: output volume (C_out, H_out, W_out); one neuron per value.
    - kernel: side k of each neuron's square window.
    - in_channels: C_in, the depth of each window.
    - bias: whether each neuron has a bias.

    Returns:
    - params: C_out * H_out * W_out * (k * k * C_in + bias).
    """
    neurons = math.prod(_chw(out_shape, "out_shape"))
    per_neuron = _int(kernel, "kernel", 1) ** 2 * _int(in_channels, "in_channels", 1)
    return neurons * (per_neuron + int(bias))


def activation_bytes(count: int, bytes_per_value: int = 4, with_gradients: bool = False) -> int:
    """Memory for `count` stored activations.

    Inputs:
    - count: number of activation values.
    - bytes_per_value: 4 for float32 (the default of GPU training), 8 for float64.
    - with_gradients: also count one gradient per activation, as backpropagation keeps.

    Returns:
    - nbytes: count * bytes_per_value, doubled with gradients.
    """
    count = _int(count, "count", 0)
    return count * _int(bytes_per_value, "bytes_per_value", 1) * (2 if with_gradients else 1)
