"""Layers: objects that keep their parameters, remember what the forward saw, and send
gradients back.

Each module has ``forward(x)`` (also ``module(x)``) and ``backward(dy) -> dx``; the backward
*adds* each parameter's gradient into ``Parameter.grad`` (so gradients of a shared layer add up,
as in PyTorch) and must follow the forward it belongs to. ``zero_grad()`` resets them.

``module.py`` holds the base classes, ``layers.py`` the layers, ``containers.py`` the modules
made of modules.
"""
from .containers import Residual, Sequential
from .layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from .module import Module, Parameter

__all__ = ["Parameter", "Module", "Sequential", "Residual", "Conv1d", "Conv2d", "Conv3d",
           "ConvTranspose2d", "Linear", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "ReLU",
           "Sigmoid", "Tanh", "LeakyReLU", "Flatten", "Dropout", "BatchNorm2d"]

# The classes are written in the files above but belong to cnnlib.nn, as NumPy's public
# functions belong to numpy: reprs, pickles, and the grader's test that a layer is the engine's
# (``type(layer).__module__ == "cnnlib.nn"``, in assignments already handed out) all see this name.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
