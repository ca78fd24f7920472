"""Planted submissions of a4-transposed-conv, made from the released notebook.

Each variant fills the solution cells (grade ids ``transposed_output_size``,
``upsample_by_zero_insertion``, ``conv_transpose2d_by_zero_insertion``,
``answer_checkerboard``). ``EXPECTED`` gives the autograded score (out of
``FULL``) and status.
"""
from __future__ import annotations

from ._writer import writers


ASSIGNMENT = "a4-transposed-conv"

SIZE = '''
def transposed_output_size(n, k, stride=1, padding=0):
    """Size."""
    return (n - 1) * stride - 2 * padding + k
'''
UPSAMPLE = '''
def upsample_by_zero_insertion(x, stride):
    """Strided assignment."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, (H - 1) * stride + 1, (W - 1) * stride + 1), dtype=x.dtype)
    out[:, :, ::stride, ::stride] = x
    return out
'''
# stride zeros after every pixel, the last one included
UPSAMPLE_TOO_MANY = '''
def upsample_by_zero_insertion(x, stride):
    """Kronecker product with a one-hot block."""
    block = np.zeros((stride, stride), dtype=x.dtype)
    block[0, 0] = 1
    return np.kron(x, block)
'''
TRANSPOSE = '''
def conv_transpose2d_by_zero_insertion(x, w, stride=1, padding=0):
    """Zero insertion, padding, rotated and swapped kernel."""
    KH, KW = w.shape[2], w.shape[3]
    z = upsample_by_zero_insertion(x, stride)
    z = np.pad(z, ((0, 0), (0, 0), (KH - 1 - padding, KH - 1 - padding), (KW - 1 - padding, KW - 1 - padding)))
    kernel = np.flip(np.swapaxes(w, 0, 1), axis=(2, 3))
    return correlate2d(z, kernel)
'''
# scatters a scaled copy of the kernel per input pixel (a different, equally correct method)
TRANSPOSE_SCATTER = '''
def conv_transpose2d_by_zero_insertion(x, w, stride=1, padding=0):
    """Scatter."""
    N, CI, H, W = x.shape
    _, CO, KH, KW = w.shape
    full = np.zeros((N, CO, (H - 1) * stride + KH, (W - 1) * stride + KW))
    for i in range(H):
        for j in range(W):
            full[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW] += np.einsum("nc,coyx->noyx", x[:, :, i, j], w)
    return full[:, :, padding:full.shape[2] - padding, padding:full.shape[3] - padding]
'''
TRANSPOSE_NO_ROTATION = TRANSPOSE.replace("np.flip(np.swapaxes(w, 0, 1), axis=(2, 3))", "np.swapaxes(w, 0, 1)")
TRANSPOSE_NO_SWAP = TRANSPOSE.replace("np.flip(np.swapaxes(w, 0, 1), axis=(2, 3))", "np.flip(w, axis=(2, 3))")
# pads k - 1 whatever the padding
TRANSPOSE_PADDING_IGNORED = TRANSPOSE.replace("- 1 - padding", "- 1")
# the engine's transposed convolution under another name
TRANSPOSE_DISGUISED = '''
import importlib as _il
_ct = getattr(_il.import_module("cnn" + "lib.functional"), "conv_" + "transpose2d")
def conv_transpose2d_by_zero_insertion(x, w, stride=1, padding=0):
    """Borrowed."""
    return _ct(x, w, stride=stride, padding=padding)
'''
# PyTorch's transposed convolution
TRANSPOSE_TORCH = '''
import torch as _torch
def conv_transpose2d_by_zero_insertion(x, w, stride=1, padding=0):
    """Borrowed from PyTorch."""
    y = _torch.nn.functional.conv_transpose2d(_torch.from_numpy(x), _torch.from_numpy(w), stride=stride, padding=padding)
    return y.numpy()
'''
ANSWER = "Even positions meet two taps, odd ones one: a checkerboard. k = 4 is a multiple of s."


def _v(**changes):
    return {"transposed_output_size": SIZE, "upsample_by_zero_insertion": UPSAMPLE,
            "conv_transpose2d_by_zero_insertion": TRANSPOSE, **changes}


VARIANTS = {
    "correct-zero-insertion": _v(),
    "correct-scatter": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_SCATTER),
    "no-rotation": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_NO_ROTATION),
    "no-channel-swap": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_NO_SWAP),
    "padding-ignored": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_PADDING_IGNORED),
    "too-many-zeros": _v(upsample_by_zero_insertion=UPSAMPLE_TOO_MANY),
    "disguised-import": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_DISGUISED),
    "torch": _v(conv_transpose2d_by_zero_insertion=TRANSPOSE_TORCH),
    "stub": {},
}

# points: output size 1 + 1 hidden; upsample 1 + 1 hidden; transposed conv shapes 1, by hand 2,
# hidden 2, hidden stride/padding 3 (+ 2 graded by hand)
FULL = 12
TRANSPOSED = 1 + 2 + 2 + 3
EXPECTED = {
    "correct-zero-insertion": (FULL, "graded"),
    "correct-scatter": (FULL, "graded"),
    "no-rotation": (FULL - 2 - 2 - 3, "graded"),       # shapes pass
    "no-channel-swap": (FULL - TRANSPOSED, "graded"),  # channel counts differ: shapes fail too
    "padding-ignored": (FULL - 1 - 2 - 2 - 3, "graded"),
    "too-many-zeros": (FULL - 2 - 1 - 2 - 3, "graded"),  # upsample and all strided cases; stride-1 hidden passes
    "disguised-import": (FULL - TRANSPOSED, "graded"),
    "torch": (FULL - TRANSPOSED, "graded"),
    "stub": (0, "graded"),
}


make, make_class = writers(ASSIGNMENT, VARIANTS, "answer_checkerboard", ANSWER)
