"""`summarize`: a spec walked over an input shape, one `Row` per layer, and its rendering
as a text or HTML table."""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Iterable, Iterator, Sequence

from .layers import FC, Conv, Flatten, Layer, Pool, ReLU
from .sizes import _chw, _int, conv_macs, conv_params, output_size


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


def _total(field: str) -> property:
    """A Summary property: the sum of one Row field over the rows."""
    return property(lambda self: sum(getattr(r, field) for r in self.rows),
                    doc=f"Sum of the rows' {field}.")


@dataclass(frozen=True)
class Summary:
    """The rows of `summarize` and their totals; prints as a table, renders as HTML."""

    input_shape: tuple[int, int, int]
    rows: tuple[Row, ...]

    total_params = _total("params")
    total_macs = _total("macs")
    total_activations = _total("activations")
    total_activation_bytes = _total("activation_bytes")

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
