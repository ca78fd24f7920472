"""Layers: objects that keep their parameters, remember what the forward saw, and send
gradients back.

Each module has ``forward(x)`` (also ``module(x)``) and ``backward(dy) -> dx``; the backward
*adds* each parameter's gradient into ``Parameter.grad`` (so gradients of a shared layer add up,
as in PyTorch) and must follow the forward it belongs to. ``zero_grad()`` resets them.
"""
from __future__ import annotations

from contextlib import contextmanager
from math import prod, sqrt
from typing import Iterator

import numpy as np

from . import functional as F
from ._params import IntOrTuple, as_tuple
from .random import generator


class Parameter:
    """A learnable array and the gradient accumulated for it (same shape)."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class. Subclasses set Parameters and sub-Modules as attributes."""

    training = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _named_children(self) -> Iterator[tuple[str, "Module"]]:
        """Direct sub-modules: attributes, and items of list/tuple attributes (``layers.0``)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    if isinstance(v, Module):
                        yield f"{name}.{i}", v

    def children(self) -> Iterator["Module"]:
        return (module for _, module in self._named_children())

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """This module and every one below it, with dotted name prefixes (``""`` for this one). As
        in PyTorch, a module used twice comes once, under its first name, unless
        ``remove_duplicate`` is False (``state_dict`` keeps both names)."""
        seen = set()

        def walk(module, prefix):
            if remove_duplicate and id(module) in seen:
                return
            seen.add(id(module))
            yield prefix, module
            for name, child in module._named_children():
                yield from walk(child, f"{prefix}{name}.")
        return walk(self, prefix)

    def named_parameters(self, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter by dotted name; a shared one once, so an optimizer steps it once."""
        seen = set()
        for prefix, module in self.named_modules(remove_duplicate=remove_duplicate):
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and not (remove_duplicate and id(value) in seen):
                    seen.add(id(value))
                    yield prefix + name, value

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode: bool = True) -> "Module":
        """Switch training behaviour (Dropout, BatchNorm) on or off, here and below."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @contextmanager
    def evaluating(self) -> Iterator["Module"]:
        """``with model.evaluating():`` runs the block in evaluation mode, then gives this module
        and each one below it its own previous mode back (a Dropout switched off alone stays
        off), also when the block raises."""
        modes = [(module, module.training) for _, module in self.named_modules()]
        self.eval()
        try:
            yield self
        finally:
            for module, mode in modes:
                module.training = mode

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter (and BatchNorm running statistics) by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters(remove_duplicate=False)}
        for name, module in self.named_modules(remove_duplicate=False):
            for key in getattr(module, "buffers", ()):
                state[name + key] = getattr(module, key).copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        expected = self.state_dict()
        if set(state) != set(expected):
            raise ValueError(f"state keys differ: missing {sorted(set(expected) - set(state))}, "
                             f"unexpected {sorted(set(state) - set(expected))}")
        params = dict(self.named_parameters(remove_duplicate=False))
        for name, value in state.items():
            if np.shape(value) != expected[name].shape:
                raise ValueError(f"{name}: expected shape {expected[name].shape}, got {np.shape(value)}")
            if name in params:
                params[name].data[...] = value
        for name, module in self.named_modules(remove_duplicate=False):
            for key in getattr(module, "buffers", ()):
                getattr(module, key)[...] = state[name + key]

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return _module_repr(self, self._named_children())


def _module_repr(module: Module, children) -> str:
    """PyTorch's layout: ``Name(extra)`` for a leaf; otherwise the extra line and one
    ``(name): child`` line per child, each indented two spaces, a nested child's lines further."""
    extra = module.extra_repr()
    extra_lines = extra.split("\n") if extra else []
    child_lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
    lines = extra_lines + child_lines
    if not child_lines and len(extra_lines) <= 1:
        return f"{type(module).__name__}({extra})"
    return f"{type(module).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _uniform(shape, bound: float, dtype, rng) -> np.ndarray:
    return generator(rng).uniform(-bound, bound, size=shape).astype(dtype)


def _given(args: dict, nd: int) -> str:
    """", k=v" for each convolution argument that is not its default, in either form (a padding
    of 0 or of (0, 0) is the default)."""
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
    x: (N, C, H, W).
    """

    buffers = ("running_mean", "running_var")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float64):
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
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
            self.running_mean += self.momentum * (mean - self.running_mean)
            self.running_var += self.momentum * (var * count / (count - 1) - self.running_var)
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


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. ``model[a:b]`` is a Sequential
    that shares those layers, which is how chapters look at intermediate feature maps."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def _named_children(self):
        # Named by position alone, as in PyTorch: '3.body.0.weight', not 'layers.3.body.layers.0.weight'.
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __getitem__(self, index):
        return Sequential(*self.layers[index]) if isinstance(index, slice) else self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        return _module_repr(self, self._named_children())


class Residual(Module):
    """y = body(x) + shortcut(x), the building block of ResNets (He et al., 2016).

    The shortcut is the identity unless given (e.g. a 1x1 convolution when shapes change). The
    gradient reaches x along both paths and the two add up: the identity path carries ``dy``
    through unchanged, which is why very deep residual networks still train. As in PyTorch, the
    repr lists ``(body)`` and, only when there is one, ``(shortcut)``.
    """

    def __init__(self, body: Module, shortcut: Module | None = None):
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        y = self.body(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if y.shape != skip.shape:
            raise ValueError(f"Residual: body gives {y.shape} but shortcut gives {skip.shape}; "
                             "pass a shortcut that matches (e.g. a 1x1 Conv2d)")
        return y + skip

    def backward(self, dy):
        dx = self.body.backward(dy)
        return dx + (dy if self.shortcut is None else self.shortcut.backward(dy))
