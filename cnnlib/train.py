"""Mini-batch training and evaluation, with a progress bar and a history to plot."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .losses import CrossEntropyLoss
from .nn import Module
from .optim import Optimizer
from .random import generator


@dataclass
class History:
    """Per-epoch metrics recorded by :func:`fit` (validation entries only when validation data is given)."""
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def plot(self, axes=None):
        """Loss and accuracy curves (see :func:`cnnlib.viz.training_curves`)."""
        from .viz import training_curves
        return training_curves(self, axes=axes)


def _check_data(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    return x, y


def predict(model: Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs for x (N, ...) in evaluation mode, batch by batch; returns (N, classes)."""
    with model.evaluating():
        return np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: Module, x: np.ndarray, y: np.ndarray, loss=None, batch_size: int = 256) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on x (N, ...) with integer labels y (N,)."""
    x, y = _check_data(x, y)
    logits = predict(model, x, batch_size)
    return (loss or CrossEntropyLoss())(logits, y), float(np.mean(logits.argmax(axis=1) == y))


def fit(model: Module, x: np.ndarray, y: np.ndarray, optimizer: Optimizer, *, epochs: int = 10,
        batch_size: int = 64, loss=None, validation: tuple[np.ndarray, np.ndarray] | None = None,
        shuffle: bool = True, rng=None, progress: bool = True) -> History:
    """Train ``model`` on x (N, ...) and integer labels y (N,) with mini-batch gradient steps.

    Inputs:
    - model: a :class:`cnnlib.nn.Module` producing logits (batch, classes).
    - x, y: training inputs and labels.
    - optimizer: holds the model's parameters (e.g. ``SGD(model.parameters(), lr=0.1)``).
    - epochs, batch_size: passes over the data and samples per step.
    - loss: a loss object with ``__call__`` and ``backward``; cross-entropy by default.
    - validation: optional (x_val, y_val) evaluated after each epoch.
    - shuffle: visit samples in a new random order each epoch (from ``rng``).
    - progress: show a progress bar (tqdm) with the running loss.

    Returns:
    - a :class:`History` with one entry per epoch.
    """
    x, y = _check_data(x, y)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    loss = loss or CrossEntropyLoss()
    rng = generator(rng)
    history = History()
    steps = -(-len(x) // batch_size)
    # Not even a disabled bar without progress: constructing one starts tqdm's monitor thread,
    # and importing tqdm.auto costs every process that never shows a bar (e.g. grading kernels).
    bar = None
    if progress:
        from tqdm.auto import tqdm
        # Off a terminal (a build log, a notebook's captured stream) every redraw is a new
        # line: redraw about five times in all instead of after every batch.
        quiet = not getattr(sys.stderr, "isatty", lambda: False)()
        bar = tqdm(total=epochs * steps, unit="batch", leave=False,
                   miniters=max(1, epochs * steps // 5) if quiet else None)
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            batch = order[i:i + batch_size]
            logits = model(x[batch])
            value = loss(logits, y[batch])
            optimizer.zero_grad()
            model.backward(loss.backward())
            optimizer.step()
            total += value * len(batch)
            correct += int(np.sum(logits.argmax(axis=1) == y[batch]))
            if bar is not None:
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", refresh=False)
        history.train_loss.append(total / len(x))
        history.train_accuracy.append(correct / len(x))
        if validation is not None:
            val_loss, val_acc = evaluate(model, *validation, loss=loss)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
        history.seconds.append(time.perf_counter() - start)
    if bar is not None:
        bar.close()
    return history
