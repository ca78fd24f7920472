"""The layer records a spec is made of: `Conv`, `Pool`, `FC`, `Flatten`, `ReLU`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


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
