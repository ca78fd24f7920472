"""What a class score depends on: saliency, class activation maps (CAM), Grad-CAM and
activation maximisation.

Each runs the model in evaluation mode (``Module.evaluating``: its previous mode comes back),
takes its gradients from the engine's own ``backward``, and leaves every ``Parameter.grad`` at
zero when it returns.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..random import generator
from .units import _require_sequential


def _single_image(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be a single image (1, C, H, W), got shape {x.shape}")
    return x


def _check_target(target: int, classes: int) -> None:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < classes:
        raise ValueError(f"target must be a class index in [0, {classes}), got {target!r}")


def _one_hot(scores: np.ndarray, target: int) -> np.ndarray:
    """The upstream gradient that selects score ``target``: d(score_target)/d(scores)."""
    if scores.ndim != 2:
        raise ValueError(f"the model must output scores (1, classes), got shape {scores.shape}")
    _check_target(target, scores.shape[1])
    dy = np.zeros_like(scores)
    dy[0, target] = 1.0
    return dy


def saliency(model: nn.Module, x: np.ndarray, target: int) -> np.ndarray:
    """Saliency map (Simonyan et al., 2014): how strongly each pixel moves the class score.

    map[h, w] = max_c |d score_target / d x[0, c, h, w]|, where score is the raw class score
    (the logit, before softmax). One forward and one backward pass of the engine, in evaluation
    mode; the model's parameter gradients are zero afterwards.

    Inputs:
    - model: a Module mapping (1, C, H, W) to scores (1, classes).
    - x: (1, C, H, W) image.
    - target: class index.

    Returns:
    - map: (H, W) non-negative array.
    """
    x = _single_image(x)
    with model.evaluating():
        scores = model.forward(x)
        dx = model.backward(_one_hot(scores, target))
    model.zero_grad()
    return np.abs(dx[0]).max(axis=0)


def _split_at(model: nn.Sequential, index: int | None, name: str) -> int:
    """A split point 0 < index < len(model) (negative counts from the end)."""
    n = len(model)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ValueError(f"{name} must be an int layer index, got {index!r}")
    index = int(index) + n if index < 0 else int(index)
    if not 0 < index < n:
        raise ValueError(f"{name} must split the model into two non-empty parts, i.e. lie in "
                         f"[1, {n - 1}], got {index}")
    return index


def class_activation_map(model: nn.Sequential, x: np.ndarray, target: int,
                         features_end: int | None = None) -> np.ndarray:
    """Class activation map (Zhou et al., 2016) of a network that ends in global average
    pooling and one Linear layer.

    With feature maps A = model[:features_end](x), (K, h, w), and the last layer's weights w,
    (classes, K):  CAM[i, j] = sum_k w[target, k] A[k, i, j]. Because the pooling is a mean,
    the class score is exactly CAM.mean() + bias[target]: the map shows where the score comes
    from.

    Inputs:
    - model: a Sequential whose layers from ``features_end`` on are exactly GlobalAvgPool2d,
      optionally Flatten, and Linear.
    - x: (1, C, H, W) image.
    - target: class index.
    - features_end: index of the GlobalAvgPool2d layer; found automatically if None.

    Returns:
    - cam: (h, w) array (signed; the feature maps' resolution, see :func:`cnnlib.viz.overlay`
      to draw it over the image).
    """
    model = _require_sequential(model)
    x = _single_image(x)
    if features_end is None:
        pools = [i for i, layer in enumerate(model.layers) if isinstance(layer, nn.GlobalAvgPool2d)]
        if not pools:
            raise ValueError("model has no GlobalAvgPool2d layer, so it has no class activation map")
        features_end = pools[-1]
    features_end = _split_at(model, features_end, "features_end")
    tail = [type(layer).__name__ for layer in model.layers[features_end:]]
    if tail not in (["GlobalAvgPool2d", "Linear"], ["GlobalAvgPool2d", "Flatten", "Linear"]):
        raise ValueError("class_activation_map needs the layers from features_end on to be "
                         f"GlobalAvgPool2d, [Flatten,] Linear; got {tail}")
    linear = model.layers[-1]
    with model.evaluating():
        maps = model[:features_end].forward(x)[0]
    weights = linear.weight.data
    if weights.shape[1] != maps.shape[0]:
        raise ValueError(f"the Linear layer takes {weights.shape[1]} features but the feature maps "
                         f"have {maps.shape[0]} channels")
    _check_target(target, weights.shape[0])
    return np.tensordot(weights[target], maps, axes=1)


def grad_cam(model: nn.Sequential, x: np.ndarray, target: int, layer: int) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., 2017) for the feature maps A = model[:layer](x), (K, h, w).

    alpha_k = mean over (i, j) of d score_target / d A[k, i, j];
    map = ReLU(sum_k alpha_k A[k]).

    The gradient comes from the engine's backward through model[layer:] only. For a network
    ending in GlobalAvgPool2d + Linear, split at the pooling layer, alpha_k = w[target, k] / (h w),
    so Grad-CAM is ReLU(CAM) / (h w). Evaluation mode; parameter gradients are zero afterwards.

    Inputs:
    - model: a Sequential mapping (1, C, H, W) to scores (1, classes).
    - x: (1, C, H, W) image.
    - target: class index.
    - layer: split point: the maps are the output of layer ``layer - 1`` (a conv or ReLU output,
      (1, K, h, w)); negative values count from the end.

    Returns:
    - map: (h, w) non-negative array.
    """
    model = _require_sequential(model)
    x = _single_image(x)
    layer = _split_at(model, layer, "layer")
    head, tail = model[:layer], model[layer:]
    with model.evaluating():
        maps = head.forward(x)
        if maps.ndim != 4:
            raise ValueError(f"layer={layer}: model[:{layer}] gives shape {maps.shape}, "
                             "not feature maps (1, K, h, w)")
        scores = tail.forward(maps)
        d_maps = tail.backward(_one_hot(scores, target))
    model.zero_grad()
    alpha = d_maps[0].mean(axis=(1, 2))
    return np.maximum(np.tensordot(alpha, maps[0], axes=1), 0)


def activation_maximization(model: nn.Module, target: int, shape: tuple[int, ...], steps: int = 200,
                            lr: float = 0.1, l2: float = 1e-3, rng: np.random.Generator | int | None = None,
                            ) -> np.ndarray:
    """The input that a model finds most typical of a class, by gradient ascent
    (Simonyan et al., 2014).

    Maximises  score_target(x) - l2 * ||x||^2  from small random noise with plain gradient
    steps  x += lr * (d score_target / dx - 2 l2 x). The penalty keeps the image bounded; without
    it a ReLU network's score grows without limit along any direction that increases it.
    Evaluation mode; parameter gradients are zero afterwards.

    Inputs:
    - model: a Module mapping (1, *shape) to scores (1, classes).
    - target: class index.
    - shape: shape of one input without the batch axis, e.g. (1, 8, 8).
    - steps, lr: number and size of the ascent steps.
    - l2: weight of the L2 penalty, >= 0.
    - rng: generator or seed of the starting noise (normal, standard deviation 0.01).

    Returns:
    - image: array of the given ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must be the positive shape of one input, e.g. (1, 8, 8), got {shape}")
    if steps < 0 or lr <= 0 or l2 < 0:
        raise ValueError(f"need steps >= 0, lr > 0 and l2 >= 0, got steps={steps}, lr={lr}, l2={l2}")
    x = generator(rng).normal(0.0, 0.01, size=(1, *shape))
    with model.evaluating():
        for _ in range(steps):
            scores = model.forward(x)
            grad = model.backward(_one_hot(scores, target))
            x += lr * (grad - 2 * l2 * x)
    model.zero_grad()
    return x[0]
