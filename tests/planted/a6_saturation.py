"""Planted submissions of a6-saturation, made from the released notebook.

Each variant fills the solution cells (grade ids ``dead_relu_fraction``,
``weight_spectrum``, ``condition_number``, ``saturated_layers``, ``verdict``,
``answer_diagnosis``). ``EXPECTED`` gives the autograded score (out of
``FULL``) and status.
"""
from __future__ import annotations

from ._writer import writers


ASSIGNMENT = "a6-saturation"

DEAD = '''
def dead_relu_fraction(model, x):
    """All at once, in evaluation mode."""
    mode = model.training
    model.eval()
    result = {}
    out = x
    for i, layer in enumerate(model.layers):
        out = layer(out)
        if isinstance(layer, nn.ReLU):
            result[i] = float(np.mean(np.all(out == 0, axis=0)))
    model.train(mode)
    return result
'''
# measured in whatever mode the model is in (training mode: batch statistics, dropout)
DEAD_TRAIN_MODE = DEAD.replace("    model.eval()\n", "")
# switches to evaluation mode and leaves the model there
DEAD_NO_RESTORE = DEAD.replace("    model.train(mode)\n", "")
# the fraction of zero activations (sparsity), not of units that are zero for every sample
DEAD_SPARSITY = DEAD.replace("np.mean(np.all(out == 0, axis=0))", "np.mean(out == 0)")
# the engine's implementation, reached without writing its name
DEAD_DISGUISED = '''
import importlib as _il
_an = _il.import_module("cnn" + "lib." + "analysis")
def dead_relu_fraction(model, x):
    """Borrowed."""
    return getattr(_an, "dead_relu_" + "fraction")(model, x)
'''
SPECTRUM = '''
def weight_spectrum(weight):
    """SVD of the filter matrix."""
    w = np.asarray(weight, dtype=float)
    return np.linalg.svd(w.reshape(len(w), -1), compute_uv=False)
'''
# square roots of the eigenvalues of W W^T: same values, but the order is not guaranteed and
# there are m of them, not min(m, n)
SPECTRUM_EIG = '''
def weight_spectrum(weight):
    """Eigenvalues of the Gram matrix."""
    w = np.asarray(weight, dtype=float).reshape(weight.shape[0], -1)
    return np.sqrt(np.abs(np.linalg.eigvalsh(w @ w.T)))
'''
# flattens the wrong way: one row per kernel column instead of one per filter
SPECTRUM_WRONG_RESHAPE = '''
def weight_spectrum(weight):
    """Wrong matrix for conv weights."""
    w = np.asarray(weight, dtype=float)
    return np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)
'''
CONDITION = '''
def condition_number(weight):
    """Ratio of extreme singular values."""
    s = weight_spectrum(weight)
    if s[-1] == 0:
        return float("inf")
    return float(s[0] / s[-1])
'''
CONDITION_INVERTED = CONDITION.replace("s[0] / s[-1]", "s[-1] / s[0]")
SATURATED = '''
def saturated_layers(model, x, dead_threshold=0.5, max_condition=1e3):
    """Both criteria."""
    has_relu = any(isinstance(layer, nn.ReLU) for layer in model.layers)
    dead = dead_relu_fraction(model, x) if has_relu else {}
    result = []
    current = None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            current = i
            if condition_number(layer.weight.data) > max_condition:
                result.append(i)
        elif isinstance(layer, nn.ReLU) and current is not None:
            if dead[i] > dead_threshold and current not in result:
                result.append(current)
            current = None
    return sorted(result)
'''
# "at least" instead of "more than"
SATURATED_AT_LEAST = SATURATED.replace("dead[i] > dead_threshold", "dead[i] >= dead_threshold")
VERDICT = '''
verdict = saturated_layers(trained_net, x_train)
print(verdict)
'''
ANSWER = "Layers 0, 2 (dead ReLUs) and 8 (condition number 1e4). Lower the learning rate, shrink the widths."


def _v(**changes):
    return {"dead_relu_fraction": DEAD, "weight_spectrum": SPECTRUM, "condition_number": CONDITION,
            "saturated_layers": SATURATED, "verdict": VERDICT, **changes}


VARIANTS = {
    "correct": _v(),
    "train-mode": _v(dead_relu_fraction=DEAD_TRAIN_MODE),
    "mode-not-restored": _v(dead_relu_fraction=DEAD_NO_RESTORE),
    "sparsity-not-dead": _v(dead_relu_fraction=DEAD_SPARSITY),
    "spectrum-by-eigenvalues": _v(weight_spectrum=SPECTRUM_EIG),
    "spectrum-wrong-reshape": _v(weight_spectrum=SPECTRUM_WRONG_RESHAPE),
    "condition-inverted": _v(condition_number=CONDITION_INVERTED),
    "threshold-at-least": _v(saturated_layers=SATURATED_AT_LEAST),
    "disguised-import": _v(dead_relu_fraction=DEAD_DISGUISED),
    "stub": {},
}

# points: dead fraction 1 + 2 hidden + 1 hidden (evaluation mode); spectrum 1 + 1 hidden;
# condition number 1 + 1 hidden; saturated layers 1 + 2 hidden; verdict 1 (+ 2 graded by hand)
FULL = 12
EXPECTED = {
    "correct": (FULL, "graded"),
    "train-mode": (FULL - 1, "graded"),              # the evaluation-mode test
    "mode-not-restored": (FULL - 1, "graded"),
    "sparsity-not-dead": (FULL - 1 - 2 - 1 - 1 - 1, "graded"),  # dead-fraction tests, tiny verdict, trained verdict
    "spectrum-by-eigenvalues": (FULL - 2 - 2 - 1 - 2 - 1, "graded"),  # ascending: condition numbers inverted too
    "spectrum-wrong-reshape": (FULL - 1 - 1 - 2, "graded"),  # conv weights: hidden spectrum, condition, saturated
    "condition-inverted": (FULL - 1 - 1 - 1 - 2 - 1, "graded"),
    "threshold-at-least": (FULL - 1, "graded"),
    "disguised-import": (FULL - 4 - 3, "graded"),    # dead-fraction and saturated-layers tests; verdict is a value
    "stub": (0, "graded"),
}


make, make_class = writers(ASSIGNMENT, VARIANTS, "answer_diagnosis", ANSWER)
