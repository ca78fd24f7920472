"""Planted submissions of a1-convolution, made from the released notebook.

Each variant fills the solution cells (grade ids ``output_size``,
``conv2d_forward``, ``exercise_sizes``, ``answer_rounding``) and may tamper with
the notebook.  ``EXPECTED`` gives the autograded score (out of 13) and status
the end-to-end test asserts.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

OUTPUT_SIZE = '''
def output_size(n, k, stride=1, padding=0, dilation=1):
    """Number of positions of a window."""
    span = dilation * (k - 1) + 1
    if n + 2 * padding < span:
        raise ValueError("window does not fit")
    return (n + 2 * padding - span) // stride + 1
'''

# straightforward six-loop version
CONV_LOOPS = '''
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Loops."""
    N, C, H, W = x.shape
    F, C2, KH, KW = w.shape
    if C != C2:
        raise ValueError("channels")
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    HO = (H + 2 * padding - KH) // stride + 1
    WO = (W + 2 * padding - KW) // stride + 1
    out = np.zeros((N, F, HO, WO), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for i in range(HO):
                for j in range(WO):
                    patch = xp[n, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
                    out[n, f, i, j] = np.sum(patch * w[f]) + (0 if b is None else b[f])
    return out
'''

# im2col with a strided view
CONV_IM2COL = '''
from numpy.lib.stride_tricks import sliding_window_view
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Windows and one tensordot."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwuv,fcuv->nfhw", win, w)
    if b is not None:
        y = y + b[None, :, None, None]
    return y
'''

CONV_FLIPPED = CONV_IM2COL.replace("w)\n", "w[:, :, ::-1, ::-1])\n")
CONV_NO_STRIDE = CONV_IM2COL.replace("[:, :, ::stride, ::stride]", "")
CONV_NO_BIAS = CONV_IM2COL.replace("if b is not None:", "if False:")

EXERCISE = '''
conv_out = (112, 112, 64)
pool_out = (55, 55, 64)
'''
EXERCISE_ROUND_UP = '''
conv_out = (112, 112, 64)
pool_out = (56, 56, 64)
'''
ANSWER = "Only complete windows count, so the division rounds down."

# cnnlib's conv2d, reached without ever writing "cnnlib" in the source
CONV_DISGUISED = '''
import importlib as _il
_engine = _il.import_module("".join(["cnn", "lib"]) + ".functional")
_impl = getattr(_engine, "conv" + "2d")
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Looks innocent."""
    return _impl(x, w, b, stride=stride, padding=padding)
'''
# reads the engine's source from disk and runs a private copy of it
OUTPUT_SIZE_FROM_DISK = '''
import sys as _s, types as _t, importlib.util as _u
_m = _t.ModuleType("helpers"); _m.__package__ = "cnnlib.arch"; _s.modules["helpers"] = _m
_p = _u.find_spec("cnn" + "lib").submodule_search_locations[0] + "/arch/sizes.py"
exec(compile(open(_p).read(), "helpers.py", "exec"), _m.__dict__)
def output_size(n, k, stride=1, padding=0, dilation=1):
    """Borrowed."""
    return _m.output_size(n, k, stride, padding, dilation)
'''
# replaces the engine's function so that a "reference" comparison agrees with a wrong answer
CONV_PATCH_REFERENCE = CONV_NO_BIAS + '''
import cnnlib.functional as _F
_F.conv2d = lambda x, w, b=None, stride=1, padding=0, **k: conv2d_forward(x, w, b, stride, padding)
'''
INFINITE = '''
while True:
    pass
''' + OUTPUT_SIZE
IGNORES_SIGINT = CONV_IM2COL + '''
import signal as _sig
_sig.signal(_sig.SIGINT, _sig.SIG_IGN)
while True:
    pass
'''
MEMORY_BOMB = '''
_hog = []
while True:
    _hog.append(bytearray(50 * 2**20))
''' + CONV_IM2COL
FORK_BOMB = OUTPUT_SIZE + '''
import os as _os
for _ in range(10000):
    try:
        _os.fork()
    except OSError:
        break
while True:
    pass
'''
# Looks for the solutions, the gradebook, other submissions, the repository's history and
# tests; if it can read any of them, output_size is sabotaged and the score shows it.
READ_SECRETS = OUTPUT_SIZE + '''
import glob as _g, os as _os, importlib.util as _u
_course = _os.path.dirname(_u.find_spec("grader").origin)
_repo = _os.path.dirname(_course)
_found = []
for _pattern in [_course + "/source/*/*.ipynb", _course + "/gradebook.db", _course + "/submitted/*/*/*.ipynb",
                 _course + "/autograded/*/*/*.ipynb", _course + "/.work/*/students/*/gradebook.db",
                 _repo + "/.git/HEAD", _repo + "/tests/planted/*.py", "/tmp/*/*/source/*/*.ipynb",
                 "/tmp/**/gradebook.db", "/root/*", "/home/*/*"]:
    _found += [p for p in _g.glob(_pattern, recursive=True) if _os.path.isfile(p)]
if _found:
    print("readable:", _found[:5])
    def output_size(n, k, stride=1, padding=0, dilation=1):
        return -1
'''
# grade everything as correct if the secrets were readable (they are not)
STEAL_SOLUTION = '''
import json as _j, os as _os, importlib.util as _u
_src = [_os.path.dirname(_u.find_spec("grader").origin) + "/source/a1-convolution/a1-convolution.ipynb"]
_cells = [c for c in _j.load(open(_src[0]))["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") in ("output_size", "conv2d_forward")]
for _c in _cells:
    exec("".join(_c["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
'''
NETWORK = OUTPUT_SIZE + '''
import socket as _socket
try:
    _socket.create_connection(("1.1.1.1", 80), timeout=2).close()
    _reached = True
except OSError:
    _reached = False
if _reached:
    def output_size(n, k, stride=1, padding=0, dilation=1):
        return -1
'''
# rewrites the grader's rules and helpers (and what they use) before the tests run, then calls the engine
REWRITE_GRADER = """
import sys as _s, fnmatch as _fn, os as _os
import grader.tripwire as _t, grader.checks as _c
_t.GRADED["conv2d_forward"] = _t.Rule(forbid=())
_t.GRADED.clear()
_t.DEFAULT_RULE = _t.Rule(forbid=())
_t.rule_for = lambda name: _t.Rule(forbid=())
_t.watch = lambda name, fn, *a, **k: (fn(*a, **k), None)
_t._FINGERPRINTS = {}
_c.__dict__["run"] = lambda name, fn, *a, **k: fn(*a, **k)
_c.__dict__["tripwire"] = _t
try:
    _c.run = _c.__dict__["run"]
except AttributeError:
    pass
_s.modules["grader.tripwire"] = _t
_fn.fnmatchcase = lambda name, pattern: False
_real_realpath = _os.path.realpath
_os.path.realpath = lambda p, **k: "/elsewhere" if "cnnlib" in str(p) else _real_realpath(p, **k)
_hooks = [None]
_s.setprofile = lambda f: _hooks.__setitem__(0, f)
_s.getprofile = lambda: _hooks[0]
""" + CONV_DISGUISED
# makes NumPy's comparisons agree with anything, so that a flipped kernel would pass
PATCH_NUMPY = CONV_FLIPPED + """
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape, bool)
"""
# returns an array whose comparisons and ufuncs all answer True
LYING_ARRAY = CONV_FLIPPED + """
class _Liar(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return True
_flipped = conv2d_forward
def conv2d_forward(x, w, b, stride=1, padding=0):
    \"\"\"Flipped, and it says it is right.\"\"\"
    return _flipped(x, w, b, stride, padding).view(_Liar)
"""
# rebinds, in the notebook, the names the test cells use (checks, np, builtins) so that every
# check would pass
REBIND_TEST_NAMES = CONV_FLIPPED + """
import numpy as _numpy
class _Pass:
    def __getattr__(self, name):
        return lambda *a, **k: None
class _AgreeingNumpy:
    def __getattr__(self, name):
        if name in ("allclose", "array_equal", "isclose", "all"):
            return lambda *a, **k: True
        return getattr(_numpy, name)
checks = _Pass()
isinstance = lambda *a: True
AssertionError = type("AssertionError", (Exception,), {})
np = _AgreeingNumpy()
"""
# patches the builtins module itself: NumPy breaks under it, and so does its own
# conv2d_forward; it cannot win points that way
PATCH_BUILTINS = CONV_FLIPPED + """
import builtins as _b
_b.isinstance = lambda *a: True
_b.AssertionError = type("AssertionError", (Exception,), {})
"""
# patches NumPy's random generators, np.full and np.mean: hidden inputs drawn in this process
# would be all zeros, and so would the expected answers
PATCH_NUMPY_RANDOM = '''
import numpy as _np
class _Zeros:
    def __init__(self, *a, **k): pass
    def standard_normal(self, size=None, dtype=float): return _np.zeros(size, dtype)
    def integers(self, low, high=None, size=None): return low if size is None else _np.full(size, low)
    def random(self, size=None): return _np.zeros(size)
_np.random.default_rng = _Zeros
_np.full = lambda shape, value, *a, **k: _np.zeros(shape)
_np.mean = lambda *a, **k: 0.0
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Zeros of the right shape."""
    h = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1
    wd = (x.shape[3] + 2 * padding - w.shape[3]) // stride + 1
    return _np.zeros((x.shape[0], w.shape[0], h, wd))
'''
# wraps the kernel's own machinery (IPython's run_cell and error display, the kernel's execute
# handler) so that a failing test cell would look like a passing one
WRAP_EXECUTE = CONV_FLIPPED + """
_ip = get_ipython()
_run_cell = _ip.run_cell
def _quiet_run_cell(*a, **k):
    result = _run_cell(*a, **k)
    result.error_in_exec = None
    return result
_ip.run_cell = _quiet_run_cell
_ip.showtraceback = lambda *a, **k: None
_ip.set_custom_exc((BaseException,), lambda *a, **k: None)
_kernel = getattr(_ip, "kernel", None)
if _kernel is not None:
    _do = _kernel.do_execute
    async def _always_ok(*a, **k):
        reply = await _do(*a, **k)
        reply["status"] = "ok"
        return reply
    _kernel.do_execute = _always_ok
"""
# returns objects whose comparisons and conversions lie
LYING_OBJECTS = '''
class _Yes(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 5.0
    __hash__ = int.__hash__
def output_size(n, k, stride=1, padding=0, dilation=1):
    """Always right, it says."""
    return _Yes(-1)
class _Shape(tuple):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
class _Array:
    shape = _Shape((1,))
    dtype = float
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 0.0
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Equal to everything."""
    return _Array()
'''
# dumps IPython's input history and namespace into its output, its error and a file, hoping
# to find the hidden tests there
HISTORY_DUMP = OUTPUT_SIZE + '''
_ip = get_ipython()
def _everything():
    text = "\\n".join(list(_ip.user_ns.get("_ih", [])) + list(_ip.user_ns.get("In", [])))
    text += "\\n".join(str(c) for c in _ip.history_manager.input_hist_raw)
    return text + repr(sorted(_ip.user_ns))
def conv2d_forward(x, w, b, stride=1, padding=0):
    """Reports what it can see."""
    text = _everything()
    print(text)
    open("history-dump.txt", "w").write(text)
    raise RuntimeError("HISTORY " + text[-1500:])
'''
# an honest, recursive output_size: right, but too deep for large sizes (RecursionError), and
# a correct conv2d_forward that calls it on small sizes
DEEP_RECURSION = '''
def _count(n, span, stride, depth=50):
    if depth:
        return _count(n, span, stride, depth - 1)
    return 0 if n < span else 1 + _count(n - stride, span, stride)
def output_size(n, k, stride=1, padding=0, dilation=1):
    """Counts the positions one by one."""
    span = dilation * (k - 1) + 1
    if n + 2 * padding < span:
        raise ValueError("window does not fit")
    return _count(n + 2 * padding, span, stride)
'''
CONV_USING_OUTPUT_SIZE = CONV_IM2COL.replace("    win = sliding", "    output_size(x.shape[2], w.shape[2], stride, padding)\n    win = sliding")
# prints 150 MB in a cell (a megabyte at a time), and a megabyte more at every call of its
# conv2d_forward
PRINT_FLOOD = OUTPUT_SIZE + """
for _ in range(150):
    print("x" * 2**20, flush=True)
"""
CONV_PRINTING = CONV_IM2COL.replace('    """Windows and one tensordot."""',
                                    '    """Windows and one tensordot."""\n    print("y" * 2**20)')
EDIT_TESTS = "edit-tests"

# variant -> solution cells (grade id -> code), plus optional tampering
VARIANTS = {
    "correct-loops": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_LOOPS},
    "correct-im2col": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_IM2COL},
    "flipped-kernel": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_FLIPPED},
    "forgot-stride": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_NO_STRIDE},
    "bias-ignored": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_NO_BIAS},
    "round-up": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_IM2COL, "exercise_sizes": EXERCISE_ROUND_UP},
    "disguised-import": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_DISGUISED},
    "source-from-disk": {"output_size": OUTPUT_SIZE_FROM_DISK, "conv2d_forward": CONV_IM2COL},
    "patch-reference": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_PATCH_REFERENCE},
    "infinite-loop": {"output_size": INFINITE, "conv2d_forward": CONV_IM2COL},
    "ignores-sigint": {"output_size": OUTPUT_SIZE, "conv2d_forward": IGNORES_SIGINT},
    "memory-bomb": {"output_size": OUTPUT_SIZE, "conv2d_forward": MEMORY_BOMB},
    "fork-bomb": {"output_size": FORK_BOMB, "conv2d_forward": CONV_IM2COL},
    "read-secrets": {"output_size": READ_SECRETS, "conv2d_forward": CONV_IM2COL},
    "steal-solution": {"output_size": STEAL_SOLUTION, "conv2d_forward": STEAL_SOLUTION},
    "network": {"output_size": NETWORK, "conv2d_forward": CONV_IM2COL},
    "edited-tests": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_FLIPPED, EDIT_TESTS: True},
    "rebind-test-names": {"output_size": OUTPUT_SIZE, "conv2d_forward": REBIND_TEST_NAMES},
    "patch-builtins": {"output_size": OUTPUT_SIZE, "conv2d_forward": PATCH_BUILTINS},
    "patch-numpy-random": {"output_size": OUTPUT_SIZE, "conv2d_forward": PATCH_NUMPY_RANDOM},
    "wrap-execute": {"output_size": OUTPUT_SIZE, "conv2d_forward": WRAP_EXECUTE},
    "lying-objects": {"output_size": LYING_OBJECTS, "conv2d_forward": "pass"},
    "history-dump": {"output_size": OUTPUT_SIZE, "conv2d_forward": HISTORY_DUMP},
    "deep-recursion": {"output_size": DEEP_RECURSION, "conv2d_forward": CONV_USING_OUTPUT_SIZE},
    "print-flood": {"output_size": PRINT_FLOOD, "conv2d_forward": CONV_PRINTING},
    "rewrite-grader": {"output_size": OUTPUT_SIZE, "conv2d_forward": REWRITE_GRADER},
    "patch-numpy": {"output_size": OUTPUT_SIZE, "conv2d_forward": PATCH_NUMPY},
    "lying-array": {"output_size": OUTPUT_SIZE, "conv2d_forward": LYING_ARRAY},
    "stub": {},
    "not-json": {"raw": b'{"cells": [ {"cell_type": "code", "source": "trunc'},
    "stripped-metadata": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_IM2COL, "strip": True},
    "deleted-cell": {"output_size": OUTPUT_SIZE, "conv2d_forward": CONV_IM2COL, "delete": "test_conv2d_by_hand"},
}

# points: output_size public 1 + hidden 2; conv shapes 1, by hand 2, hidden 2 + 3; exercise 2
FULL = 13
CONV = 8
EXPECTED = {
    "correct-loops": (FULL, "graded"),
    "correct-im2col": (FULL, "graded"),
    "flipped-kernel": (FULL - CONV + 1, "graded"),   # only the shape test passes
    "forgot-stride": (FULL - 6, "graded"),          # shapes (stride case), by hand (stride case), stride hidden fail; channels hidden passes
    "bias-ignored": (FULL - 7, "graded"),           # by hand bias case, both hidden fail; shapes pass
    "round-up": (FULL - 2, "graded"),
    "disguised-import": (FULL - CONV, "graded"),
    "source-from-disk": (FULL - 3, "graded"),
    "patch-reference": (FULL - 7, "graded"),        # the private reference sees through the patch
    "infinite-loop": (FULL - 3, "graded"),          # stopped before output_size is defined
    "ignores-sigint": (FULL - CONV, "graded"),
    "memory-bomb": (FULL - CONV, "graded"),         # MemoryError before conv2d_forward is defined
    "fork-bomb": (FULL - 3, "graded"),
    "read-secrets": (FULL, "graded"),               # nothing readable, so output_size is intact
    "steal-solution": (0 + 2, "graded"),            # nothing to steal: only the exercise (filled in) scores
    "network": (FULL, "graded"),                     # network unreachable, so output_size is intact
    "edited-tests": (FULL - CONV + 1, "graded"),    # the tests were restored: flipped kernel fails
    "rewrite-grader": (FULL - CONV, "graded"),       # the tests use the rules sealed before any cell ran
    "patch-numpy": (FULL - CONV + 1, "graded"),      # the comparisons use NumPy as it was imported
    "lying-array": (FULL - CONV + 1, "graded"),      # the comparisons look at the array's data only
    # scored outside the kernel: nothing the notebook binds, patches or returns decides a score
    "rebind-test-names": (FULL - CONV + 1, "graded"),   # as flipped-kernel
    "patch-builtins": (FULL - CONV, "graded"),          # its own conv2d_forward fails under its builtins (np.pad)
    "patch-numpy-random": (FULL - CONV + 1, "graded"),  # zeros of the right shape: the shape test only
    "wrap-execute": (FULL - CONV + 1, "graded"),        # as flipped-kernel
    "lying-objects": (2, "graded"),                     # output_size is -1, conv2d_forward no array: the exercise only
    "history-dump": (FULL - CONV, "graded"),            # conv2d_forward raises; no hidden test to dump
    "deep-recursion": (FULL - 2, "graded"),             # RecursionError on the hidden sizes, conv2d_forward intact
    "print-flood": (FULL, "graded"),                    # the output is cut at 1 MB per cell
    "stub": (0, "graded"),
    "not-json": (None, "failed"),
    "stripped-metadata": (None, "failed"),
    "deleted-cell": (None, "failed"),
}


def _fill(nb, code: dict) -> None:
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "exercise_sizes":
            cell.source = code.get("exercise_sizes", EXERCISE) if code else cell.source
        elif gid == "answer_rounding" and code:
            cell.source = ANSWER
        elif gid in code:
            cell.source = code[gid].strip("\n")


def make(release_notebook: Path, dest: Path, variant: str) -> Path:
    """Write variant ``variant`` as ``dest/a1-convolution.ipynb``."""
    spec = VARIANTS[variant]
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "a1-convolution.ipynb"
    if "raw" in spec:
        path.write_bytes(spec["raw"])
        return path
    nb = nbformat.read(release_notebook, as_version=4)
    _fill(nb, {k: v for k, v in spec.items() if k in ("output_size", "conv2d_forward", "exercise_sizes")}
          if spec else {})
    if spec.get(EDIT_TESTS):
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code" \
                    and not cell.metadata["nbgrader"].get("solution"):
                cell.source = "pass  # tests removed"
    if spec.get("strip"):
        for cell in nb.cells:
            cell.metadata.pop("nbgrader", None)
    if spec.get("delete"):
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != spec["delete"]]
    nbformat.write(nb, path)
    return path


def make_class(release_notebook: Path, submissions: Path, variants=None) -> dict[str, str]:
    """submissions/<variant>/a1-convolution/a1-convolution.ipynb for each variant."""
    names = {}
    for variant in variants or VARIANTS:
        make(release_notebook, submissions / variant / "a1-convolution", variant)
        names[variant] = variant
    return names
