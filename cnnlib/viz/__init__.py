"""Plotting helpers that the chapters share.

Every function draws with matplotlib and returns the :class:`~matplotlib.figure.Figure` it drew
on (``sliding_window_animation`` returns the animation). Nothing calls ``plt.show()``: in a
notebook the figure appears at the end of the cell (end the call with ``;`` or assign its
result, or Jupyter shows the returned Figure a second time); in a script call ``plt.show()`` or
``fig.savefig(...)``. Functions that draw a single panel take ``ax=`` (or ``axes=``) to draw into
an existing figure instead of a new one.

Conventions: images in grey (``cmap='gray'``); signed quantities (kernels, gradients, signed
feature maps) in a diverging colormap whose white is exactly zero; a colorbar wherever the
colour encodes a value the reader should be able to read.

Where each plot lives: ``images`` (``show_images``, ``feature_maps``, ``filters``), ``matrices``
(``matrix``, ``confusion_matrix``), ``curves`` (``spectrum``, ``training_curves``), ``heatmaps``
(``overlay``) and ``animation`` (``sliding_window_animation``); ``_common`` holds the helpers
they share.
"""
from .animation import sliding_window_animation
from .curves import spectrum, training_curves
from .heatmaps import _resize, overlay  # _resize: the tests compare it with PyTorch's interpolate
from .images import feature_maps, filters, show_images
from .matrices import confusion_matrix, matrix
