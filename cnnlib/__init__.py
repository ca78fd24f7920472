"""cnnlib: a small, exact, readable NumPy engine for convolutional neural networks.

Modules: ``functional`` (ops and their backward twins), ``nn`` (layers), ``optim``, ``losses``,
``train``, ``data``, ``filters``, ``arch``, ``analysis``, ``gradcheck``, ``viz``, ``reference``
(naive loops) and ``bench``.
"""
from . import functional, losses, nn, optim, train
from ._memory import keep_freed_memory
from .random import seed

keep_freed_memory()  # on import: every training step reuses memory instead of faulting pages in

__version__ = "0.1.0"
