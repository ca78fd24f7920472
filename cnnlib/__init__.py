"""cnnlib: a small, exact, readable NumPy engine for convolutional neural networks.

Modules: ``functional`` (ops and their backward twins), ``nn`` (layers), ``optim``, ``losses``,
``train``, ``data``, ``filters``, ``arch``, ``analysis``, ``gradcheck``, ``viz``, ``reference``
(naive loops) and ``bench``.
"""
from . import functional, losses, nn, optim, train
from .random import seed

__version__ = "0.1.0"
