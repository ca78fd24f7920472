"""Shift invariance: how much a function's output changes when its input is translated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np


@dataclass(frozen=True)
class ShiftInvariance:
    """Result of :func:`shift_invariance`: one entry per shift, in the order given."""

    shifts: list[tuple[int, int]]
    unchanged: np.ndarray  # (S,) fraction of output entries equal to the unshifted ones
    mean_abs_change: np.ndarray  # (S,) mean |f(shifted x) - f(x)| over all output entries

    def __str__(self) -> str:
        rows = [f"shift {s}: unchanged {u:.1%}, mean |change| {m:.4g}"
                for s, u, m in zip(self.shifts, self.unchanged, self.mean_abs_change)]
        return "\n".join(rows)


def _translate(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x moved dy pixels down and dx right on its last two axes, zeros entering at the border."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    src_r, dst_r = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
    src_c, dst_c = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
    out[..., dst_r, dst_c] = x[..., src_r, src_c]
    return out


def shift_invariance(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                     shifts: Iterable[tuple[int, int] | int], atol: float = 1e-8) -> ShiftInvariance:
    """How much the output of ``fn`` changes when its input is translated by a few pixels.

    For each shift (dy, dx), x is translated by dy rows down and dx columns right on its last
    two axes (the pixels moved out are lost, zeros move in: a real translation, not a circular
    roll), and the outputs are compared entry by entry *at the same positions*:

    - unchanged = fraction of entries with |f(shifted x) - f(x)| <= atol (1.0: perfectly
      invariant to this shift);
    - mean_abs_change = mean of |f(shifted x) - f(x)| over all entries.

    E.g. ``fn = lambda x: F.max_pool2d(x, 2)`` measures the invariance that max pooling buys,
    and ``fn = lambda x: model(x).argmax(1)`` gives the fraction of unchanged predictions.

    Inputs:
    - fn: function of an array shaped like x returning an array (of any fixed shape).
    - x: input, (..., H, W), e.g. a batch (N, C, H, W).
    - shifts: (dy, dx) pairs of ints; an int s means (0, s), a horizontal shift.
    - atol: tolerance of "unchanged".

    Returns:
    - result: :class:`ShiftInvariance` with the shifts and two (S,) arrays.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., H, W), got shape {x.shape}")
    pairs = []
    for s in shifts:
        pair = (0, s) if isinstance(s, (int, np.integer)) else tuple(s)
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
            raise ValueError(f"shifts must hold ints or (dy, dx) pairs of ints, got {s!r}")
        if abs(pair[0]) >= x.shape[-2] or abs(pair[1]) >= x.shape[-1]:
            raise ValueError(f"shift {pair} moves the whole {x.shape[-2:]} image out of view")
        pairs.append((int(pair[0]), int(pair[1])))
    if not pairs:
        raise ValueError("shifts is empty")
    reference = np.asarray(fn(x), dtype=np.float64)
    unchanged, change = [], []
    for dy, dx in pairs:
        moved = np.asarray(fn(_translate(x, dy, dx)), dtype=np.float64)
        if moved.shape != reference.shape:
            raise ValueError(f"fn gives shape {moved.shape} for the shifted input but {reference.shape} "
                             "for the original; it must not depend on the content")
        diff = np.abs(moved - reference)
        unchanged.append(float(np.mean(diff <= atol)))
        change.append(float(diff.mean()))
    return ShiftInvariance(pairs, np.array(unchanged), np.array(change))
