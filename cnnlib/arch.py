"""Architecture arithmetic: output sizes, receptive fields, parameters, MACs, memory.

A network is described by a *spec*, a sequence of the small layer records
`Conv`, `Pool`, `FC`, `Flatten` and `ReLU`; `summarize` walks a spec over an
input shape (C, H, W) and tabulates every layer. Nothing here allocates weights,
so even VGG-16 is summarised instantly. `LENET5`, `ALEXNET`, `ALEXNET_ORIGINAL`
and `VGG16` are ready-made specs, each with its input shape in `*_INPUT`.
"""
from __future__ import annotations

from html import escape
import math
import operator
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union


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


def _window_span(n: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Validate the arguments; return how far the window can slide, n + 2p - d(k-1) - 1."""
    n = _int(n, "n", 1)
    kernel = _int(kernel, "kernel", 1)
    _int(stride, "stride", 1)
    padding = _int(padding, "padding", 0)
    dilation = _int(dilation, "dilation", 1)
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        raise ValueError(
            f"kernel {kernel} (dilation {dilation}, extent {dilation * (kernel - 1) + 1}) "
            f"does not fit input {n} with padding {padding}"
        )
    return span


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
    span = _window_span(n, kernel, stride, padding, dilation)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= n + padding:
        out -= 1
    return out


def fits(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> bool:
    """Whether the windows tile the padded input exactly, with no leftover pixels.

    True when (n + 2p - d (k - 1) - 1) is divisible by s; otherwise the floor in
    `output_size` silently ignores the last (n + 2p - d(k-1) - 1) mod s pixels.

    Inputs: as in `output_size`.

    Returns:
    - fits: bool.
    """
    return _window_span(n, kernel, stride, padding, dilation) % stride == 0


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


def _chw(shape, name: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), got {tuple(shape)}")
    return tuple(_int(s, name, 1) for s in shape)


@dataclass(frozen=True)
class Conv:
    """Square 2-D convolution: `out_channels` filters of size kernel x kernel."""

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = True

    def __str__(self) -> str:
        extra = "".join(
            f", {label} {value}"
            for label, value, default in (("pad", self.padding, 0), ("groups", self.groups, 1))
            if value != default
        )
        return f"Conv {self.kernel}x{self.kernel}/{self.stride}, {self.out_channels}{extra}"


@dataclass(frozen=True)
class Pool:
    """Square pooling window; `stride` defaults to `kernel`, `kind` is 'max' or 'avg'."""

    kernel: int
    stride: int | None = None
    padding: int = 0
    kind: str = "max"

    def __str__(self) -> str:
        pad = f", pad {self.padding}" if self.padding else ""
        return f"{self.kind.capitalize()}Pool {self.kernel}x{self.kernel}/{self.step}{pad}"

    @property
    def step(self) -> int:
        return self.kernel if self.stride is None else self.stride


@dataclass(frozen=True)
class FC:
    """Fully connected layer on a flat input."""

    out_features: int
    bias: bool = True

    def __str__(self) -> str:
        return f"FC {self.out_features}"


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) -> (C * H * W,), in C order."""

    def __str__(self) -> str:
        return "Flatten"


@dataclass(frozen=True)
class ReLU:
    """Elementwise max(0, x); no parameters."""

    def __str__(self) -> str:
        return "ReLU"


Layer = Union[Conv, Pool, FC, Flatten, ReLU]


@dataclass(frozen=True)
class Row:
    """One line of a summary.

    receptive_field and jump are None from the first FC layer on, whose outputs
    see the whole input.
    """

    name: str
    layer: Layer
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activations: int
    activation_bytes: int
    receptive_field: int | None
    jump: int | None


@dataclass(frozen=True)
class Summary:
    """The rows of `summarize` and their totals; prints as a table, renders as HTML."""

    input_shape: tuple[int, int, int]
    rows: tuple[Row, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def total_activations(self) -> int:
        return sum(r.activations for r in self.rows)

    @property
    def total_activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]

    def __str__(self) -> str:
        return format_summary(self.rows)

    def _repr_html_(self) -> str:
        return format_summary(self.rows, html=True)


def summarize(
    spec: Sequence[Layer], input_shape: tuple[int, int, int], bytes_per_value: int = 4
) -> Summary:
    """Walk a spec over an input and tabulate every layer.

    Inputs:
    - spec: sequence of Conv, Pool, FC, Flatten and ReLU records, first layer first.
      FC needs a flat input, so put Flatten() before the first FC.
    - input_shape: (C, H, W) of one input image.
    - bytes_per_value: size of one stored activation (4 for float32).

    Returns:
    - summary: a Summary whose rows give, per layer, its name (conv1, pool1, fc1, ...),
      output shape (C, H, W) or (F,), parameters, MACs for one image, output
      activations, their bytes, receptive field and jump. The input itself is not
      a row, and Flatten stores no activations (it is a view), so the totals count
      the values each layer creates.
    """
    shape: tuple[int, ...] = _chw(input_shape, "input_shape")
    bytes_per_value = _int(bytes_per_value, "bytes_per_value", 1)
    rf, jump = 1, 1
    counters: dict[str, int] = {}
    rows = []
    for i, layer in enumerate(spec):
        where = f"spec[{i}] {layer!s}"
        params = macs = 0
        if isinstance(layer, (Conv, Pool)) and len(shape) != 3:
            raise ValueError(f"{where} needs a (C, H, W) input, got {shape}")
        if isinstance(layer, Conv):
            c_in, h, w = shape
            params = conv_params(c_in, layer.out_channels, layer.kernel, layer.groups, layer.bias)
            macs = conv_macs(
                shape, layer.out_channels, layer.kernel, layer.stride, layer.padding, layer.groups
            )
            shape = (layer.out_channels,) + tuple(
                output_size(n, layer.kernel, layer.stride, layer.padding) for n in (h, w)
            )
            rf, jump = rf + (layer.kernel - 1) * jump, jump * layer.stride
            kind = "conv"
        elif isinstance(layer, Pool):
            if layer.kind not in ("max", "avg"):
                raise ValueError(f"{where}: kind must be 'max' or 'avg', got {layer.kind!r}")
            if layer.padding > layer.kernel // 2:
                raise ValueError(
                    f"{where}: padding {layer.padding} exceeds half the kernel {layer.kernel}"
                )
            c, h, w = shape
            shape = (c,) + tuple(
                output_size(n, layer.kernel, layer.step, layer.padding) for n in (h, w)
            )
            rf, jump = rf + (layer.kernel - 1) * jump, jump * layer.step
            kind = "pool"
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
            kind = "flatten"
        elif isinstance(layer, FC):
            if len(shape) != 1:
                raise ValueError(
                    f"{where} needs a flat (F,) input, got {shape}; add Flatten() before it"
                )
            out = _int(layer.out_features, "out_features", 1)
            params = shape[0] * out + (out if layer.bias else 0)
            macs = shape[0] * out
            shape = (out,)
            rf = jump = None
            kind = "fc"
        elif isinstance(layer, ReLU):
            kind = "relu"
        else:
            raise TypeError(
                f"spec[{i}] must be Conv, Pool, FC, Flatten or ReLU, got {type(layer).__name__}"
            )
        counters[kind] = counters.get(kind, 0) + 1
        # Flatten is a reshape, a view of its input: it stores nothing new.
        count = 0 if kind == "flatten" else math.prod(shape)
        rows.append(
            Row(
                f"{kind}{counters[kind]}", layer, shape, params, macs,
                count, count * bytes_per_value, rf, jump,
            )
        )
    return Summary(tuple(input_shape), tuple(rows))


_COLUMNS = ("layer", "type", "output", "params", "MACs", "activations", "memory", "RF")


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.4g} {unit}"
        n /= 1024
    return f"{n:.4g} GiB"


def _cells(row: Row) -> tuple[str, ...]:
    rf = "" if row.receptive_field is None else f"{row.receptive_field} (jump {row.jump})"
    return (
        row.name,
        str(row.layer),
        "x".join(str(s) for s in row.output_shape),
        f"{row.params:,}",
        f"{row.macs:,}",
        f"{row.activations:,}",
        _human_bytes(row.activation_bytes),
        rf,
    )


def format_summary(rows: Iterable[Row], html: bool = False) -> str:
    """Render summary rows, plus a totals line, as a text table or an HTML table.

    Inputs:
    - rows: the rows of `summarize` (a Summary or any iterable of Row).
    - html: return a <table> (for notebooks) instead of aligned plain text.

    Returns:
    - table: the rendered table as a string.
    """
    rows = list(rows)
    body = [_cells(r) for r in rows]
    total_bytes = sum(r.activation_bytes for r in rows)
    totals = (
        "total", "", "",
        f"{sum(r.params for r in rows):,}",
        f"{sum(r.macs for r in rows):,}",
        f"{sum(r.activations for r in rows):,}",
        _human_bytes(total_bytes),
        "",
    )
    if html:
        return _html_table(body, totals)
    widths = [max(len(line[j]) for line in [_COLUMNS, totals, *body]) for j in range(len(_COLUMNS))]
    # Text columns read left-aligned, numbers right-aligned so digits line up.
    numeric = {3, 4, 5, 6}

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[j]) if j in numeric else cell.ljust(widths[j])
            for j, cell in enumerate(line)
        ).rstrip()

    rule = "-" * len(fmt(["-" * w for w in widths]))
    return "\n".join([fmt(_COLUMNS), rule, *(fmt(line) for line in body), rule, fmt(totals)])


def _html_table(body: list[tuple[str, ...]], totals: tuple[str, ...]) -> str:
    def tr(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{escape(c)}</{tag}>" for c in cells) + "</tr>"

    return "\n".join(
        [
            "<table>",
            "<thead>" + tr(_COLUMNS, "th") + "</thead>",
            "<tbody>",
            *(tr(line, "td") for line in body),
            "</tbody>",
            "<tfoot>" + tr(totals, "th") + "</tfoot>",
            "</table>",
        ]
    )


def _vgg_block(channels: int, convs: int) -> tuple[Layer, ...]:
    return tuple(Conv(channels, 3, padding=1) for _ in range(convs)) + (Pool(2, 2),)


# Activations (ReLU, tanh) are left out of the ready-made specs: they add no
# parameters or MACs, and frameworks apply them in place, so counting their
# outputs would double the activation memory.

LENET5_INPUT = (1, 32, 32)
# LeCun et al. (1998) in its common modern form: full connections from S2 to C3
# and plain 2x2 average pooling instead of subsampling with trainable coefficients.
LENET5: tuple[Layer, ...] = (
    Conv(6, 5), Pool(2, 2, kind="avg"),
    Conv(16, 5), Pool(2, 2, kind="avg"),
    Flatten(), FC(120), FC(84), FC(10),
)

ALEXNET_INPUT = (3, 224, 224)
# torchvision's single-tower AlexNet (64/192/384/256/256 filters). Its adaptive
# average pool to 6x6 is the identity for a 224x224 input and is omitted.
ALEXNET: tuple[Layer, ...] = (
    Conv(64, 11, stride=4, padding=2), Pool(3, 2),
    Conv(192, 5, padding=2), Pool(3, 2),
    Conv(384, 3, padding=1), Conv(256, 3, padding=1), Conv(256, 3, padding=1), Pool(3, 2),
    Flatten(), FC(4096), FC(4096), FC(1000),
)

# Krizhevsky et al. (2012), split over two GPUs: conv2, conv4 and conv5 only see the
# kernels on their own GPU (groups=2). The paper's figure says 224, but an 11x11
# window with stride 4 gives 55 outputs only from 227: (227 - 11) / 4 + 1 = 55.
ALEXNET_ORIGINAL_INPUT = (3, 227, 227)
ALEXNET_ORIGINAL: tuple[Layer, ...] = (
    Conv(96, 11, stride=4), Pool(3, 2),
    Conv(256, 5, padding=2, groups=2), Pool(3, 2),
    Conv(384, 3, padding=1), Conv(384, 3, padding=1, groups=2), Conv(256, 3, padding=1, groups=2),
    Pool(3, 2),
    Flatten(), FC(4096), FC(4096), FC(1000),
)

VGG16_INPUT = (3, 224, 224)
# Simonyan and Zisserman (2014), configuration D.
VGG16: tuple[Layer, ...] = (
    _vgg_block(64, 2) + _vgg_block(128, 2) + _vgg_block(256, 3)
    + _vgg_block(512, 3) + _vgg_block(512, 3)
    + (Flatten(), FC(4096), FC(4096), FC(1000))
)
