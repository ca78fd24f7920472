"""Optimisers: update parameters from their accumulated gradients, with PyTorch's formulas."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .nn import Parameter


class Optimizer:
    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        self.lr = self._checked("lr", lr, 0.0)

    def _checked(self, name: str, value: float, low: float, below: float | None = None) -> float:
        """``value`` if it lies in [low, below), else a ValueError naming it (PyTorch's ranges:
        lr 0 is allowed, a negative one is not)."""
        if not low <= value or (below is not None and not value < below):
            bound = f"in [{low}, {below})" if below is not None else f"at least {low}"
            raise ValueError(f"{type(self).__name__}: {name} must be {bound}, got {value!r}")
        return value

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay.

    g = grad + weight_decay * w;  v = momentum * v + g (v = g on the first step);  w -= lr * v.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = self._checked("momentum", momentum, 0.0)
        self.weight_decay = self._checked("weight_decay", weight_decay, 0.0)
        self.velocity = [None] * len(self.params)

    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v = self.velocity[i]
                self.velocity[i] = g.copy() if v is None else self.momentum * v + g
                g = self.velocity[i]
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-parameter steps scaled by running moments of the gradient,
    with bias correction for the first steps."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.betas = tuple(self._checked(f"betas[{i}]", b, 0.0, 1.0) for i, b in enumerate(betas))
        self.eps = self._checked("eps", eps, 0.0)
        self.weight_decay = self._checked("weight_decay", weight_decay, 0.0)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat = m / (1 - b1 ** self.t)
            v_hat = v / (1 - b2 ** self.t)
            p.data -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.data.dtype, copy=False)
