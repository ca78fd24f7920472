"""Architecture arithmetic: output sizes, receptive fields, parameters, MACs, memory.

A network is described by a *spec*, a sequence of the small layer records
`Conv`, `Pool`, `FC`, `Flatten` and `ReLU`; `summarize` walks a spec over an
input shape (C, H, W) and tabulates every layer. Nothing here allocates weights,
so even VGG-16 is summarised instantly. `LENET5`, `ALEXNET`, `ALEXNET_ORIGINAL`
and `VGG16` are ready-made specs, each with its input shape in `*_INPUT`.

Where things live: ``sizes`` (output size, fits, receptive field, parameters, MACs, memory),
``layers`` (the layer records), ``summary`` (``summarize`` and its table) and ``networks``
(the ready-made specs).
"""
from .layers import FC, Conv, Flatten, Layer, Pool, ReLU
from .networks import (
                       ALEXNET,
                       ALEXNET_INPUT,
                       ALEXNET_ORIGINAL,
                       ALEXNET_ORIGINAL_INPUT,
                       LENET5,
                       LENET5_INPUT,
                       VGG16,
                       VGG16_INPUT,
)
from .sizes import (
                       activation_bytes,
                       approx_conv_macs,
                       conv_macs,
                       conv_params,
                       fits,
                       output_size,
                       receptive_field,
                       unshared_params,
)
from .summary import Row, Summary, format_summary, summarize
