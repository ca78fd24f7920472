"""One seedable source of randomness for initialisation, dropout and shuffling.

``cnnlib.seed(0)`` makes a whole notebook reproducible; any function that takes ``rng`` also
accepts its own ``numpy.random.Generator`` (or an int seed) instead.
"""
from __future__ import annotations

import numpy as np

_global = np.random.default_rng(0)


def seed(value: int) -> None:
    """Reset the shared generator used when no ``rng`` is given."""
    global _global
    _global = np.random.default_rng(value)


def generator(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """``rng`` itself, a new generator seeded by an int, or the shared one for None."""
    if rng is None:
        return _global
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
