"""Convolution (cross-correlation) in 1, 2 and 3 spatial dimensions, its transpose, and their
gradients.

Three kernels do all the work, each in its plain form im2col/col2im plus one GEMM per group:

* ``_correlate``:    y  = W  * x     (the forward convolution)
* ``_transpose``:    x' = W^T * y    (its adjoint: the transposed convolution)
* ``_weight_grad``:  dW = dy * x^T   (the gradient of the weight)

and the backward passes are built from them by duality: the input gradient of a convolution is
a transposed convolution of ``dy``, and the input gradient of a transposed convolution is a
convolution of ``dy``. Arguments reach these kernels already checked; only the public functions
at the bottom validate.

Which algorithm for which shape (each kernel chooses by the rules below). The figures are times
of one strategy over another, or over a bare GEMM of the same shape, forced in turn side by side
on the course's 2-core machine: float32, N=32, 3x3 kernels with padding 1 unless said. The plain
forms live here; the two others in ``_shifted.py`` and ``_per_sample.py``:

* im2col: the input copied once per kernel offset into columns, then one GEMM per batch slice
  and a reordering copy into (N, C, ...). The default: stride 2, depthwise, 8x8 maps, and
  narrow layers (32->128 16x16: the shifted views took 1.08x its time forward, 1.12x backward).
* shifted views (``shifted.correlate``), for stride 1 with at least 48 input and output
  channels per group and 256 output positions (``_shifted_pays``): per kernel offset, one GEMM
  of the weight's (C_out/g, C_in/g) slice with a shifted view of the flat padded input, summed
  a few samples at a time in cache. No columns, but the GEMMs' inner size is only C_in/g.
  Copying the input once per tap of the last kernel axis (k_W copies) makes the GEMMs k_W times
  deeper. The input gradient of a stride-1 convolution (a correlation of ``dy`` with the
  flipped, transposed kernel) and the weight gradient (``shifted.weight_grad``) take the same
  rule; narrow layers lose (above), hence "input *and* output channels". The rule was set when
  every slice's columns page-faulted in fresh memory (64->64 32x32 forward 1.47x its GEMM
  against im2col's 1.86x). Since cnnlib keeps freed memory (``cnnlib._memory``) the columns are
  cheap and the forward is level; the backward still gains a little. Shifted over im2col,
  forward / backward, 2 threads then 1: 64->64 32x32 1.01 / 0.87, 1.00 / 0.94; 48->64 32x32
  0.97 / 0.91, 0.98 / 0.95; 128->128 16x16 1.00 / 1.08, 0.99 / 0.98; N=64 64->64 14x14
  1.01 / 0.97, 1.00 / 1.00.
* per sample (``per_sample.correlate``), for inner sizes C_in/g * prod(kernel) under 128 with
  at least 16 output channels per group (a layer on one input channel): such a GEMM is bound by
  moving its operands, so each sample's product goes straight into (N, C, ...), the bias as one
  more weight column: 1.5x faster than im2col for one input channel (1->32 28x28 5x5, N=64,
  after the memory fix; 1.5-1.8x before). The weight gradient takes the same rule (dy read
  straight from (N, C, ...), no grid copy: 0.56-0.90x of im2col's time for inner sizes 9-100,
  N=32-64, 28x28-32x32); the input gradient only for inner sizes under 32
  (``SAMPLE_SCATTER_INNER``): adding the columns back window by window costs more per input
  channel (0.82-0.93x at 9-27, 1.14-1.26x at 72-108).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from .._params import IntOrTuple, as_array, as_tuple, check_bias, check_gradient, conv_padding, window_count
from ..im2col import batches, col2im, from_grid, grid, im2col, pad_for_windows, padded_size, to_grid
from . import _per_sample as per_sample
from . import _shifted as shifted

# The rules of the module docstring.
SHIFTED_MIN_CHANNELS = 48
SHIFTED_MIN_POSITIONS = 256
SAMPLE_GEMM_INNER = 128
SAMPLE_GEMM_MIN_OUT = 16  # a depthwise layer's per-sample products are matrix-vector: 1.2x slower
SAMPLE_SCATTER_INNER = 32  # the input gradient adds its per-sample columns back window by window


def _per_sample_pays(c_out, inner, groups):
    return inner < SAMPLE_GEMM_INNER and c_out // groups >= SAMPLE_GEMM_MIN_OUT


def _shifted_pays(stride, c_out, c_in, groups, positions):
    channels = min(c_out, c_in) // groups  # both sides of each small GEMM
    return max(stride) == 1 and channels >= SHIFTED_MIN_CHANNELS and positions >= SHIFTED_MIN_POSITIONS


def _correlate(x, weight, stride, before, dilation, groups, out, bias=None):
    """x (N, C_in, *in), weight (C_out, C_in/g, *k), bias (C_out,) or None -> (N, C_out, *out)."""
    if _per_sample_pays(weight.shape[0], prod(weight.shape[1:]), groups):
        return per_sample.correlate(x, weight, bias, stride, before, dilation, groups, out)
    if _shifted_pays(stride, weight.shape[0], x.shape[1], groups, prod(out)):
        return shifted.correlate(x, weight, before, dilation, groups, out, bias)
    kernel, n, c_out = weight.shape[2:], x.shape[0], weight.shape[0]
    xp = pad_for_windows(x, before, kernel, stride, dilation, out)
    g = grid(xp.shape[2:], stride, out)
    w = weight.reshape(groups, c_out // groups, -1)
    y = np.empty((n, c_out, *out), dtype=x.dtype)
    sample_bytes = (x.shape[1] * prod(kernel) + c_out) * prod(g) * x.itemsize
    for batch in batches(n, sample_bytes, x, y):
        col = im2col(xp[batch], kernel, stride, dilation, out)
        m = col.shape[1 + len(kernel)]
        y_cols = np.matmul(w, col.reshape(groups, -1, m * prod(g)))
        y[batch] = from_grid(y_cols.reshape(c_out, m, *g), out).swapaxes(0, 1)
        del col, y_cols  # else they live on while the next slice allocates its own
    return _add_bias(y, bias)


def _transpose(y, weight, stride, before, dilation, groups, size):
    """Adjoint of :func:`_correlate`: y (N, C_out, *o), weight (C_out, C_in/g, *k) -> (N, C_in, *size).

    ``size`` is the spatial size wanted; positions that fall into the padding are dropped.
    """
    kernel, n, out = weight.shape[2:], y.shape[0], y.shape[2:]
    c_in = weight.shape[1] * groups
    inner = prod(weight.shape[1:])
    if _per_sample_pays(weight.shape[0], inner, groups) and inner < SAMPLE_SCATTER_INNER:
        return per_sample.transpose(y, weight, stride, before, dilation, groups, size)
    left = [d * (k - 1) - b for k, d, b in zip(kernel, dilation, before)]
    if _shifted_pays(stride, weight.shape[0], c_in, groups, prod(size)) and min(left) >= 0:
        # With stride 1 the adjoint is a correlation of y, padded by `left`, with the kernel
        # flipped and each group's (C_out/g, C_in/g) transposed.
        w = weight.reshape(groups, -1, *weight.shape[1:]).swapaxes(1, 2).reshape(c_in, -1, *kernel)
        flipped = w[(slice(None), slice(None), *(slice(None, None, -1),) * len(kernel))]
        return shifted.correlate(y, flipped, left, dilation, groups, size)
    padded = padded_size(size, before, kernel, stride, dilation, out)
    g = grid(padded, stride, out)
    w = weight.reshape(groups, weight.shape[0] // groups, -1).transpose(0, 2, 1)
    crop = tuple(slice(b, b + m) for b, m in zip(before, size))
    x = np.empty((n, c_in, *size), dtype=y.dtype)
    for batch in batches(n, (c_in * prod(kernel) + weight.shape[0]) * prod(g) * y.itemsize, y, x):
        y_cols = to_grid(y[batch].swapaxes(0, 1), g)
        m = y_cols.shape[1]
        col = np.matmul(w, y_cols.reshape(groups, -1, m * prod(g))).reshape(c_in, *kernel, m, *g)
        x[batch] = col2im(col, padded, stride, dilation, out)[(slice(None), slice(None), *crop)]
    return x


def _weight_grad(x, dy, kernel, stride, before, dilation, groups):
    """x (N, C_in, *in), dy (N, C_out, *out) -> dW (C_out, C_in/g, *kernel) of ``_correlate``."""
    n, c_in, out, c_out = x.shape[0], x.shape[1], dy.shape[2:], dy.shape[1]
    if _per_sample_pays(c_out, c_in // groups * prod(kernel), groups):
        return per_sample.weight_grad(x, dy, kernel, stride, before, dilation, groups)
    if _shifted_pays(stride, c_out, c_in, groups, prod(out)):
        return shifted.weight_grad(x, dy, kernel, before, dilation, groups)
    xp = pad_for_windows(x, before, kernel, stride, dilation, out)
    g = grid(xp.shape[2:], stride, out)
    dw = np.zeros((groups, c_out // groups, c_in // groups * prod(kernel)), dtype=x.dtype)
    for batch in batches(n, (c_in * prod(kernel) + c_out) * prod(g) * x.itemsize, x, dy):
        col = im2col(xp[batch], kernel, stride, dilation, out)
        dy_cols = to_grid(dy[batch].swapaxes(0, 1), g)
        m = dy_cols.shape[1]
        dw += np.matmul(dy_cols.reshape(groups, c_out // groups, -1),
                        col.reshape(groups, -1, m * prod(g)).transpose(0, 2, 1))
    return dw.reshape(c_out, c_in // groups, *kernel)


@dataclass(frozen=True)
class _Geometry:
    """A checked convolution problem: arrays in a common dtype and per-axis arguments."""
    x: np.ndarray
    weight: np.ndarray
    stride: tuple[int, ...]
    before: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    out: tuple[int, ...]


_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_common(op, nd, x, weight, stride, dilation, groups):
    x = as_array(x, "x", op, nd + 2, _LAYOUT[nd])
    weight = as_array(weight, "weight", op, nd + 2, "(C_out, C_in/groups, *kernel)"
                      if "transpose" not in op else "(C_in, C_out/groups, *kernel)")
    if 0 in x.shape[2:]:
        raise ValueError(f"{op}: x of shape {x.shape} has an empty spatial axis")
    if 0 in weight.shape[2:] or weight.shape[1 if "transpose" in op else 0] == 0:
        raise ValueError(f"{op}: weight of shape {weight.shape} has an empty axis: a kernel needs at "
                         "least one tap and one output channel")
    dtype = np.result_type(x.dtype, weight.dtype)
    stride = as_tuple(stride, nd, "stride", op, minimum=1)
    dilation = as_tuple(dilation, nd, "dilation", op, minimum=1)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return x.astype(dtype, copy=False), weight.astype(dtype, copy=False), stride, dilation, int(groups)


def _conv_geometry(op, nd, x, weight, stride, padding, dilation, groups) -> _Geometry:
    x, weight, stride, dilation, groups = _check_common(op, nd, x, weight, stride, dilation, groups)
    c_in, c_out, kernel = x.shape[1], weight.shape[0], weight.shape[2:]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{op}: groups={groups} must divide both input channels ({c_in}) and "
                         f"output channels ({c_out})")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"{op}: x has {c_in} channels but weight of shape {weight.shape} with "
                         f"groups={groups} expects {weight.shape[1] * groups}")
    pads = conv_padding(padding, kernel, dilation, stride, op)
    out = tuple(window_count(n, p, k, s, d)
                for n, p, k, s, d in zip(x.shape[2:], pads, kernel, stride, dilation))
    if min(out) < 1:
        reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = tuple(n + a + b for n, (a, b) in zip(x.shape[2:], pads))
        raise ValueError(f"{op}: kernel {kernel} with dilation {dilation} spans {reach}, larger "
                         f"than the padded input {padded} (x shape {x.shape}, padding {padding!r})")
    return _Geometry(x, weight, stride, tuple(p[0] for p in pads), dilation, groups, out)


def _add_bias(y, bias):
    if bias is not None:
        y += bias.reshape(1, -1, *(1,) * (y.ndim - 2))
    return y


def _bias_grad(dy):
    """dy (N, C, *out) summed to (C,). As a product with ones it runs in BLAS, 3x faster than
    ``dy.sum(axis=(0, 2, 3))`` (64x32x28x28: 0.07 against 0.23 ms), whose axes are strided."""
    n, c, size = *dy.shape[:2], prod(dy.shape[2:])
    return (dy.reshape(n, c, size) @ np.ones(size, dtype=dy.dtype)).sum(axis=0)


def _conv(op, nd, x, weight, bias, stride, padding, dilation, groups):
    g = _conv_geometry(op, nd, x, weight, stride, padding, dilation, groups)
    bias = check_bias(op, bias, g.weight.shape[0], g.x.dtype)
    return _correlate(g.x, g.weight, g.stride, g.before, g.dilation, g.groups, g.out, bias)


def _conv_backward(op, nd, dy, x, weight, stride, padding, dilation, groups):
    g = _conv_geometry(op, nd, x, weight, stride, padding, dilation, groups)
    dy = check_gradient(op, dy, (g.x.shape[0], g.weight.shape[0], *g.out), g.x.dtype)
    dx = _transpose(dy, g.weight, g.stride, g.before, g.dilation, g.groups, g.x.shape[2:])
    dw = _weight_grad(g.x, dy, g.weight.shape[2:], g.stride, g.before, g.dilation, g.groups)
    return dx, dw, _bias_grad(dy)


def _transpose_geometry(op, nd, x, weight, stride, padding, output_padding, groups, dilation):
    x, weight, stride, dilation, groups = _check_common(op, nd, x, weight, stride, dilation, groups)
    c_in, kernel = x.shape[1], weight.shape[2:]
    if weight.shape[0] != c_in:
        raise ValueError(f"{op}: x has {c_in} channels but weight of shape {weight.shape} "
                         f"expects {weight.shape[0]} (transposed weights are (C_in, C_out/groups, *kernel))")
    if c_in % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({c_in})")
    padding = as_tuple(padding, nd, "padding", op, minimum=0)
    output_padding = as_tuple(output_padding, nd, "output_padding", op, minimum=0)
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= max(s, d):
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                             f"stride {stride} or dilation {dilation}")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o
                 in zip(x.shape[2:], stride, padding, dilation, kernel, output_padding))
    if min(size) < 1:
        raise ValueError(f"{op}: padding {padding} crops the whole output: x shape {x.shape}, "
                         f"kernel {kernel}, stride {stride} give output size {size}")
    return _Geometry(x, weight, stride, padding, dilation, groups, size)


def _conv_transpose(op, nd, x, weight, bias, stride, padding, output_padding, groups, dilation):
    g = _transpose_geometry(op, nd, x, weight, stride, padding, output_padding, groups, dilation)
    y = _transpose(g.x, g.weight, g.stride, g.before, g.dilation, g.groups, g.out)
    return _add_bias(y, check_bias(op, bias, g.weight.shape[1] * g.groups, y.dtype))


def _conv_transpose_backward(op, nd, dy, x, weight, stride, padding, output_padding, groups, dilation):
    g = _transpose_geometry(op, nd, x, weight, stride, padding, output_padding, groups, dilation)
    dy = check_gradient(op, dy, (g.x.shape[0], g.weight.shape[1] * g.groups, *g.out), g.x.dtype)
    size = g.x.shape[2:]
    dx = _correlate(dy, g.weight, g.stride, g.before, g.dilation, g.groups, size)
    dw = _weight_grad(dy, g.x, g.weight.shape[2:], g.stride, g.before, g.dilation, g.groups)
    return dx, dw, _bias_grad(dy)


# ---------------------------------------------------------------------------------------------
# Public API. Shapes: N batch, C channels, k kernel size, g groups.

def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> np.ndarray:
    """2-D convolution (cross-correlation, no kernel flip), as ``torch.nn.functional.conv2d``.

    Inputs:
    - x: input of shape (N, C_in, H, W).
    - weight: filters of shape (C_out, C_in / groups, kH, kW).
    - bias: optional (C_out,) added to every output position.
    - stride: step between windows, an int or a pair, positive.
    - padding: zeros added on both sides, an int or a pair, or ``'valid'`` (none) or ``'same'``
      (output size equals input size; stride 1 only; an odd total puts the extra zero at the end).
    - dilation: spacing between kernel taps, positive.
    - groups: split channels into ``groups`` independent convolutions.

    Returns:
    - y of shape (N, C_out, H_out, W_out), with out = floor((n + 2p - d(k - 1) - 1) / s) + 1 per axis.
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: IntOrTuple = 1,
                    padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1):
    """Gradients of :func:`conv2d` given the upstream gradient ``dy``.

    Inputs:
    - dy: gradient of the loss with respect to the output, shape (N, C_out, H_out, W_out).
    - x, weight, stride, padding, dilation, groups: exactly as passed to the forward.

    Returns:
    - (dx, dweight, dbias) of shapes (N, C_in, H, W), weight.shape and (C_out,). ``dx`` is the
      transposed convolution of ``dy`` with the same weight, ``dweight`` the correlation of ``x``
      with ``dy``.
    """
    return _conv_backward("conv2d_backward", 2, dy, x, weight, stride, padding, dilation, groups)


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> np.ndarray:
    """:func:`conv2d` along one axis, as ``torch.nn.functional.conv1d``.

    Inputs: x (N, C_in, L), weight (C_out, C_in / groups, kL), the rest as for conv2d.
    Returns: y (N, C_out, L_out).
    """
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)


def conv1d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: IntOrTuple = 1,
                    padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1):
    """Gradients of :func:`conv1d`: dy (N, C_out, L_out) -> (dx, dweight, dbias), as conv2d_backward."""
    return _conv_backward("conv1d_backward", 1, dy, x, weight, stride, padding, dilation, groups)


def conv3d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> np.ndarray:
    """:func:`conv2d` along three axes, as ``torch.nn.functional.conv3d``.

    Inputs: x (N, C_in, D, H, W), weight (C_out, C_in / groups, kD, kH, kW), the rest as for conv2d.
    Returns: y (N, C_out, D_out, H_out, W_out).
    """
    return _conv("conv3d", 3, x, weight, bias, stride, padding, dilation, groups)


def conv3d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: IntOrTuple = 1,
                    padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1):
    """Gradients of :func:`conv3d`: dy (N, C_out, D_out, H_out, W_out) -> (dx, dweight, dbias)."""
    return _conv_backward("conv3d_backward", 3, dy, x, weight, stride, padding, dilation, groups)


def conv_transpose2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """2-D transposed convolution ("up-convolution"), as ``torch.nn.functional.conv_transpose2d``.

    It is the adjoint of :func:`conv2d` with the same weight: every input pixel scatters a copy
    of the kernel, scaled by the pixel, into the output at ``stride`` spacing; overlaps add up.

    Inputs:
    - x: input of shape (N, C_in, H, W).
    - weight: (C_in, C_out / groups, kH, kW), note the order: the transpose of a conv weight.
    - bias: optional (C_out,).
    - stride, dilation: as for the convolution this transposes, positive.
    - padding: rows/columns cropped from each side of the full output, non-negative.
    - output_padding: extra rows/columns at the bottom/right, each smaller than the stride
      or the dilation; picks among the input sizes a strided conv maps to the same size.
    - groups: independent channel groups.

    Returns:
    - y of shape (N, C_out, H_out, W_out), H_out = (H - 1)s - 2p + d(kH - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray,
                              stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                              output_padding: IntOrTuple = 0, groups: int = 1,
                              dilation: IntOrTuple = 1):
    """Gradients of :func:`conv_transpose2d` given the upstream gradient ``dy`` (N, C_out, H_out, W_out).

    Returns:
    - (dx, dweight, dbias) with shapes (N, C_in, H, W), weight.shape, (C_out,). ``dx`` is the
      ordinary convolution of ``dy`` with the same weight.
    """
    return _conv_transpose_backward("conv_transpose2d_backward", 2, dy, x, weight, stride,
                                    padding, output_padding, groups, dilation)
