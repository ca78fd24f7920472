"""The base of every layer: ``Parameter`` (an array and its gradient) and ``Module`` (forward,
backward, and the walks over a tree of modules that name, collect, switch and save them)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np


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
