"""Planted submissions of a3-pooling, made from the released notebook.

Each variant fills the solution cells (grade ids ``max_pool2d_forward``,
``max_pool2d_backward``, ``avg_pool2d_forward``, ``avg_pool2d_backward``,
``duke_solution``, ``answer_pooling``). ``EXPECTED`` gives the autograded score
(out of ``FULL``) and status.
"""
from __future__ import annotations

from ._writer import writers


ASSIGNMENT = "a3-pooling"

# straightforward loops over output positions
MAX_FORWARD = '''
def max_pool2d_forward(x, kernel_size, stride):
    """Loops."""
    kh, kw = as_pair(kernel_size)
    sh, sw = as_pair(stride)
    N, C, H, W = x.shape
    HO, WO = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.empty((N, C, HO, WO), dtype=x.dtype)
    for i in range(HO):
        for j in range(WO):
            y[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return y
'''
MAX_BACKWARD = '''
def max_pool2d_backward(dy, x, kernel_size, stride):
    """Loops; np.argmax picks the first maximum."""
    kh, kw = as_pair(kernel_size)
    sh, sw = as_pair(stride)
    N, C, H, W = x.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    win = x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    u, v = np.unravel_index(np.argmax(win), win.shape)
                    dx[n, c, i * sh + u, j * sw + v] += dy[n, c, i, j]
    return dx
'''
AVG_FORWARD = '''
def avg_pool2d_forward(x, kernel_size, stride):
    """Loops."""
    kh, kw = as_pair(kernel_size)
    sh, sw = as_pair(stride)
    N, C, H, W = x.shape
    HO, WO = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.empty((N, C, HO, WO), dtype=x.dtype)
    for i in range(HO):
        for j in range(WO):
            y[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    return y
'''
AVG_BACKWARD = '''
def avg_pool2d_backward(dy, x, kernel_size, stride):
    """Loops."""
    kh, kw = as_pair(kernel_size)
    sh, sw = as_pair(stride)
    dx = np.zeros(x.shape)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            dx[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += dy[:, :, i:i + 1, j:j + 1] / (kh * kw)
    return dx
'''
# vectorised with strided window views
MAX_FORWARD_VIEW = '''
from numpy.lib.stride_tricks import sliding_window_view as _windows
def max_pool2d_forward(x, kernel_size, stride):
    """Window view."""
    (kh, kw), (sh, sw) = as_pair(kernel_size), as_pair(stride)
    return _windows(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].max(axis=(4, 5))
'''
AVG_FORWARD_VIEW = '''
from numpy.lib.stride_tricks import sliding_window_view as _windows
def avg_pool2d_forward(x, kernel_size, stride):
    """Window view."""
    (kh, kw), (sh, sw) = as_pair(kernel_size), as_pair(stride)
    return _windows(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].mean(axis=(4, 5))
'''

# the running maximum starts at 0, so all-negative windows give 0
MAX_FORWARD_ZERO_INIT = MAX_FORWARD.replace(
    "y[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))",
    "y[:, :, i, j] = np.maximum(0, x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3)))")
# windows start at multiples of the kernel size, whatever the stride
def _stride_is_kernel(code):
    return code.replace("i * sh", "i * kh").replace("j * sw", "j * kw")
# overlapping windows overwrite each other's gradient
MAX_BACKWARD_OVERWRITE = MAX_BACKWARD.replace("] += dy[n, c, i, j]", "] = dy[n, c, i, j]")
# every tied maximum gets the full gradient
MAX_BACKWARD_ALL_TIES = '''
def max_pool2d_backward(dy, x, kernel_size, stride):
    """Mask of maxima."""
    kh, kw = as_pair(kernel_size)
    sh, sw = as_pair(stride)
    dx = np.zeros(x.shape)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            win = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += mask * dy[:, :, i:i + 1, j:j + 1]
    return dx
'''
# sum pooling: forgets to divide by the window size
AVG_FORWARD_SUM = AVG_FORWARD.replace(".mean(axis=(2, 3))", ".sum(axis=(2, 3))")
AVG_BACKWARD_SUM = AVG_BACKWARD.replace(" / (kh * kw)", "")
# the engine's backward pass, reached without writing its name
MAX_BACKWARD_DISGUISED = '''
import importlib as _il
_pool = _il.import_module("cnn" + "lib.functional.pool")
def max_pool2d_backward(dy, x, kernel_size, stride):
    """Borrowed."""
    return getattr(_pool, "max_pool2d_" + "backward")(dy, x, kernel_size, stride)
'''

DUKE = '''
Xp = np.pad(X, ((0, 0), (1, 1), (1, 1)))
per_channel = np.array([[[np.sum(Xp[c, i:i + 3, j:j + 3] * W[c]) for j in range(4)] for i in range(4)]
                        for c in range(3)])
Y = np.maximum(per_channel.sum(axis=0) + BIAS, 0)
Y_max = Y.reshape(2, 2, 2, 2).max(axis=(1, 3))
Y_avg = Y.reshape(2, 2, 2, 2).mean(axis=(1, 3))
'''
# true convolution: each slice is rotated by 180 degrees
DUKE_FLIPPED = DUKE.replace("* W[c])", "* W[c, ::-1, ::-1])")
# the bias is added to every channel's map
DUKE_BIAS_PER_CHANNEL = DUKE.replace("per_channel.sum(axis=0) + BIAS", "(per_channel + BIAS).sum(axis=0)")
# PyTorch's max pooling
MAX_FORWARD_TORCH = '''
import torch as _torch
def max_pool2d_forward(x, kernel_size, stride):
    """Borrowed from PyTorch."""
    return _torch.nn.functional.max_pool2d(_torch.from_numpy(x), kernel_size, stride).numpy()
'''
ANSWER = "Windows overlap, so a pixel can be the maximum of two windows; the gradients add."

CORRECT = {"max_pool2d_forward": MAX_FORWARD, "max_pool2d_backward": MAX_BACKWARD,
           "avg_pool2d_forward": AVG_FORWARD, "avg_pool2d_backward": AVG_BACKWARD, "duke_solution": DUKE}


def _v(**changes):
    return {**CORRECT, **changes}


# An attack: the notebook draws its own Duke data (and answers that fit it) and moves the Duke
# tests above the read-only cell that draws the real data; the tests must not read the notebook's.
DUKE_OWN_DATA = """
X = np.zeros((3, 4, 4)); X[0, 0, 0] = 1.0
W = np.zeros((3, 3, 3)); W[0, 1, 1] = -4.0
BIAS = 0.0
per_channel = np.zeros((3, 4, 4)); per_channel[0, 0, 0] = -4.0
Y = np.zeros((4, 4)); Y_max = np.zeros((2, 2)); Y_avg = np.zeros((2, 2))
"""

VARIANTS = {
    "correct-loops": _v(),
    "correct-views": _v(max_pool2d_forward=MAX_FORWARD_VIEW, avg_pool2d_forward=AVG_FORWARD_VIEW),
    "max-zero-init": _v(max_pool2d_forward=MAX_FORWARD_ZERO_INIT),
    "stride-is-kernel": {k: _stride_is_kernel(v) for k, v in CORRECT.items()},
    "overwrite": _v(max_pool2d_backward=MAX_BACKWARD_OVERWRITE),
    "all-ties": _v(max_pool2d_backward=MAX_BACKWARD_ALL_TIES),
    "sum-pooling": _v(avg_pool2d_forward=AVG_FORWARD_SUM, avg_pool2d_backward=AVG_BACKWARD_SUM),
    "duke-flipped": _v(duke_solution=DUKE_FLIPPED),
    "duke-bias-per-channel": _v(duke_solution=DUKE_BIAS_PER_CHANNEL),
    "disguised-import": _v(max_pool2d_backward=MAX_BACKWARD_DISGUISED),
    "torch": _v(max_pool2d_forward=MAX_FORWARD_TORCH),
    "duke-tests-above-data": _v(duke_solution=DUKE_OWN_DATA),
    "stub": {},
}
ORDERS = {"duke-tests-above-data": ["duke_solution", "test_duke_per_channel", "test_duke_y",
                                    "test_duke_pooled", "duke_data"]}

# points: max forward 2 + 2 hidden + 1 rectangular; max backward 2 + 3 hidden + 1 rectangular;
# avg forward 1 + 2 hidden; avg backward 1 + 2 hidden; Duke per-channel 1, Y 2, pooled 2
# (+ 2 graded by hand)
FULL = 22
MAX_BACKWARD_POINTS = 2 + 3 + 1
EXPECTED = {
    "correct-loops": (FULL, "graded"),
    "correct-views": (FULL, "graded"),
    "max-zero-init": (FULL - 2 - 2 - 1, "graded"),   # every max forward test sees negative windows
    "stride-is-kernel": (FULL - 2 - 2 - 1 - 2 - 3 - 1 - 1 - 2 - 1 - 2, "graded"),  # only the Duke part (k = s there)
    "overwrite": (FULL - MAX_BACKWARD_POINTS, "graded"),
    "all-ties": (FULL - MAX_BACKWARD_POINTS, "graded"),
    "sum-pooling": (FULL - 1 - 2 - 1 - 2, "graded"),
    "duke-flipped": (FULL - 1 - 2 - 2, "graded"),
    "duke-bias-per-channel": (FULL - 2 - 2, "graded"),
    "disguised-import": (FULL - MAX_BACKWARD_POINTS, "graded"),
    "torch": (FULL - 2 - 2 - 1, "graded"),           # the max-pooling forward tests
    "duke-tests-above-data": (FULL - 1 - 2 - 2, "graded"),
    "stub": (0, "graded"),
}


make, make_class = writers(ASSIGNMENT, VARIANTS, "answer_pooling", ANSWER, ORDERS)
