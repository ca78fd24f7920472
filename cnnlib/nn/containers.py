"""Modules made of modules: ``Sequential`` (one after another) and ``Residual`` (a body and a
shortcut added)."""
from __future__ import annotations

from .module import Module, _module_repr


def _refuse_repeats(container: Module) -> None:
    """A module keeps the input of its last forward for its backward, so one that runs twice in a
    model would send a wrong gradient back: refuse it, and say how to share weights instead."""
    first: dict[int, str] = {}
    for name, module in container.named_modules(remove_duplicate=False):
        name = name.rstrip(".")
        if id(module) in first:
            raise ValueError(f"{type(container).__name__}: {name} is {first[id(module)]} again; a layer "
                             "keeps the input of its last forward for its backward, so use two layers "
                             "(to tie their weights: second.weight = first.weight)")
        first[id(module)] = name or "the container itself"


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse. ``model[a:b]`` is a Sequential
    that shares those layers, which is how chapters look at intermediate feature maps."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, not a Module")
        self.layers = list(layers)
        _refuse_repeats(self)

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
        _refuse_repeats(self)

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
