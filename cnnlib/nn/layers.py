"""The layers: convolutions, dense, pooling, activations, flatten, dropout and batch
normalisation. Most are a thin ``Module`` over the ``cnnlib.functional`` op of the same name;
flatten, dropout and batch normalisation are written out here."""
from __future__ import annotations

from math import prod, sqrt

import numpy as np

from .. import functional as F
from .._params import IntOrTuple, as_tuple
from ..random import generator
from .module import Module, Parameter


def _uniform(shape, bound: float, dtype, rng) -> np.ndarray:
    return generator(rng).uniform(-bound, bound, size=shape).astype(dtype)


def _given(args: dict, nd: int) -> str:
    """The repr's ``, k=v`` for each convolution argument that is not its default, in either
    form (a padding of 0 or of (0, 0) is the default)."""
    defaults = dict(stride=1, padding=0, output_padding=0, dilation=1, groups=1)
    return "".join(f", {k}={v}" for k, v in args.items() if v not in (defaults[k], (defaults[k],) * nd))


class _ConvNd(Module):
    """Shared by Conv1d/2d/3d. PyTorch's default initialisation: weight and bias uniform in
    +-1/sqrt(fan_in), fan_in = C_in/groups * prod(kernel)."""

    nd = 0
    _forward = _backward = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1,
                 bias: bool = True, dtype=np.float64, rng=None):
        kernel = as_tuple(kernel_size, self.nd, "kernel_size", type(self).__name__, minimum=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: groups={groups} must divide in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        bound = 1 / sqrt(in_channels // groups * prod(kernel))
        self.weight = Parameter(_uniform((out_channels, in_channels // groups, *kernel), bound, dtype, rng))
        self.bias = Parameter(_uniform((out_channels,), bound, dtype, rng)) if bias else None
        self.args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def forward(self, x):
        self.x = x
        return type(self)._forward(x, self.weight.data, None if self.bias is None else self.bias.data, **self.args)

    def backward(self, dy):
        dx, dw, db = type(self)._backward(dy, self.x, self.weight.data, **self.args)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        c_out, c_in_g = self.weight.shape[:2]
        return (f"{c_in_g * self.args['groups']}, {c_out}, kernel_size={self.weight.shape[2:]}"
                + _given(self.args, self.nd) + ("" if self.bias is not None else ", bias=False"))


class Conv1d(_ConvNd):
    """1-D convolution layer: (N, C_in, L) -> (N, C_out, L_out). See :func:`cnnlib.functional.conv1d`."""
    nd, _forward, _backward = 1, staticmethod(F.conv1d), staticmethod(F.conv1d_backward)


class Conv2d(_ConvNd):
    """2-D convolution layer: (N, C_in, H, W) -> (N, C_out, H_out, W_out). See :func:`cnnlib.functional.conv2d`."""
    nd, _forward, _backward = 2, staticmethod(F.conv2d), staticmethod(F.conv2d_backward)


class Conv3d(_ConvNd):
    """3-D convolution layer: (N, C_in, D, H, W) -> (N, C_out, D', H', W'). See :func:`cnnlib.functional.conv3d`."""
    nd, _forward, _backward = 3, staticmethod(F.conv3d), staticmethod(F.conv3d_backward)


class ConvTranspose2d(Module):
    """Transposed convolution layer (N, C_in, H, W) -> (N, C_out, H_out, W_out); weight
    (C_in, C_out/groups, kH, kW). See :func:`cnnlib.functional.conv_transpose2d`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1,
                 bias: bool = True, dilation: IntOrTuple = 1, dtype=np.float64, rng=None):
        kernel = as_tuple(kernel_size, 2, "kernel_size", "ConvTranspose2d", minimum=1)
        # PyTorch computes fan_in from weight.shape[1] * prod(kernel) for transposed convs too.
        bound = 1 / sqrt(out_channels // groups * prod(kernel))
        self.weight = Parameter(_uniform((in_channels, out_channels // groups, *kernel), bound, dtype, rng))
        self.bias = Parameter(_uniform((out_channels,), bound, dtype, rng)) if bias else None
        self.args = dict(stride=stride, padding=padding, output_padding=output_padding,
                         groups=groups, dilation=dilation)

    def forward(self, x):
        self.x = x
        return F.conv_transpose2d(x, self.weight.data, None if self.bias is None else self.bias.data, **self.args)

    def backward(self, dy):
        dx, dw, db = F.conv_transpose2d_backward(dy, self.x, self.weight.data, **self.args)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        return (f"{self.weight.shape[0]}, {self.weight.shape[1] * self.args['groups']}, "
                f"kernel_size={self.weight.shape[2:]}" + _given(self.args, 2)
                + ("" if self.bias is not None else ", bias=False"))


class Linear(Module):
    """Dense layer (N, in_features) -> (N, out_features); weight (out_features, in_features),
    initialised uniform in +-1/sqrt(in_features) like PyTorch."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float64, rng=None):
        bound = 1 / sqrt(in_features)
        self.weight = Parameter(_uniform((out_features, in_features), bound, dtype, rng))
        self.bias = Parameter(_uniform((out_features,), bound, dtype, rng)) if bias else None

    def forward(self, x):
        self.x = x
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy):
        dx, dw, db = F.linear_backward(dy, self.x, self.weight.data)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}" + ("" if self.bias is not None else ", bias=False")


class _Pool(Module):
    shown = ()  # the arguments PyTorch's repr names, in its order

    def __init__(self, **args):
        self.args = args

    def forward(self, x):
        self.x = x
        return type(self)._forward(x, **self.args)

    def backward(self, dy):
        return type(self)._backward(dy, self.x, **self.args)

    def extra_repr(self):
        args = {**self.args, "stride": self.args.get("stride") or self.args.get("kernel_size")}
        return ", ".join(f"{k}={args[k]}" for k in self.shown)


class MaxPool2d(_Pool):
    """Max pooling (N, C, H, W) -> (N, C, H_out, W_out). See :func:`cnnlib.functional.max_pool2d`."""
    shown = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 dilation: IntOrTuple = 1, ceil_mode: bool = False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, x):
        # While training a backward follows, so keep the argmax (as PyTorch does) rather than
        # search every window again; in eval mode a backward (saliency) searches once more.
        self.x, self.indices = x, None
        if not self.training:
            return F.max_pool2d(x, **self.args)
        y, self.indices = F.max_pool2d(x, **self.args, return_indices=True)
        return y

    def backward(self, dy):
        return F.max_pool2d_backward(dy, self.x, **self.args, indices=self.indices)


class AvgPool2d(_Pool):
    """Average pooling (N, C, H, W) -> (N, C, H_out, W_out). See :func:`cnnlib.functional.avg_pool2d`."""
    _forward, _backward = staticmethod(F.avg_pool2d), staticmethod(F.avg_pool2d_backward)
    shown = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)


class GlobalAvgPool2d(_Pool):
    """Mean over all positions: (N, C, H, W) -> (N, C)."""
    _forward, _backward = staticmethod(F.global_avg_pool2d), staticmethod(F.global_avg_pool2d_backward)


class _Activation(Module):
    def forward(self, x):
        self.x = x
        return type(self)._forward(x)

    def backward(self, dy):
        return type(self)._backward(dy, self.x)


class ReLU(_Activation):
    """max(x, 0), any shape."""
    _forward, _backward = staticmethod(F.relu), staticmethod(F.relu_backward)


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), any shape."""
    _forward, _backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)


class Tanh(_Activation):
    """tanh(x), any shape."""
    _forward, _backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise; any shape."""

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.x = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, dy):
        return F.leaky_relu_backward(dy, self.x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Flatten(Module):
    """(N, *rest) -> (N, prod(rest)): the bridge from feature maps to dense layers."""

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Dropout(Module):
    """While training, zero each entry with probability ``p`` and scale the rest by 1/(1-p), so
    that evaluation (which does nothing) sees the same expected activation."""

    def __init__(self, p: float = 0.5, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.rng = p, rng

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = generator(self.rng).random(x.shape) >= self.p
        self.mask = keep.astype(x.dtype) / (1 - self.p)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask

    def extra_repr(self):
        return f"p={self.p}"


class BatchNorm2d(Module):
    """Normalise each channel over (N, H, W), then scale by ``weight`` and shift by ``bias``.

    Training uses the batch's mean and (biased) variance and updates running estimates
    (the variance with the unbiased estimate, as PyTorch does); evaluation uses the running ones.
    Each estimate moves ``momentum`` of the way to the batch's value, or, with ``momentum=None``,
    is the plain average over the ``num_batches_tracked`` training batches so far.
    x: (N, C, H, W).
    """

    buffers = ("running_mean", "running_var", "num_batches_tracked")  # PyTorch's state_dict keys

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, dtype=np.float64):
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)
        self.eps, self.momentum = eps, momentum

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"BatchNorm2d: expected (N, {self.weight.shape[0]}, H, W), got {x.shape}")
        count = x.size // x.shape[1]
        if self.training and count < 2:
            raise ValueError(f"BatchNorm2d: training needs more than one value per channel, got "
                             f"x of shape {x.shape} (PyTorch refuses it too)")
        if self.training:
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            self.num_batches_tracked += 1
            step = 1 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean += step * (mean - self.running_mean)
            self.running_var += step * (var * count / (count - 1) - self.running_var)
        else:
            mean, var = self.running_mean, self.running_var
        self.batch_statistics = self.training  # the backward must follow this forward's mode
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean[:, None, None]) * self.inv_std[:, None, None]
        return self.x_hat * self.weight.data[:, None, None] + self.bias.data[:, None, None]

    def backward(self, dy):
        self.weight.grad += (dy * self.x_hat).sum(axis=(0, 2, 3))
        self.bias.grad += dy.sum(axis=(0, 2, 3))
        g = dy * (self.weight.data * self.inv_std)[:, None, None]
        if not self.batch_statistics:  # running statistics are constants
            return g
        # The batch mean and variance depend on x too: remove the gradient's mean and its
        # projection on x_hat, per channel.
        return g - g.mean(axis=(0, 2, 3), keepdims=True) - self.x_hat * (
            (g * self.x_hat).mean(axis=(0, 2, 3), keepdims=True))

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}, momentum={self.momentum}"
