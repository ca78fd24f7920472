"""The anti-cheat rules, in one place.

Isolation (grader/sandbox.py) and scoring (grader/scoring.py) make a score something student
code cannot forge; these rules are about something else: a submission that earns points with
the engine's own implementation of the function it was asked to write, or code aimed at the
grader. Two mechanisms read them:

- ``GRADED``, ``DEFAULT_RULE`` and ``ESCAPES``: grader/tripwire.py, in the kernel, watches each
  call of a graded function and fails the test when it runs what its rule forbids;
- ``MODULES`` ... ``TEST_NAMES``: grader/review.py reads (never runs) the student's cells and
  puts "review by hand" in the export when they reach into the grading machinery.

One entry in ``GRADED`` per graded function of every assignment (grader/AUTHORING.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """Patterns (fnmatch, on ``module.qualname``) a graded function may not run."""

    forbid: tuple[str, ...] = ("cnnlib.*",)
    allow: tuple[str, ...] = ()
    reason: str = field(default="")


# Convolution routines of other libraries: using them is not implementing a convolution.
_OTHER_CONV = ("torch.*conv*", "torch.*unfold*", "scipy.signal.*", "scipy.ndimage.*")

# Code nested inside the engine's functions (comprehensions, lambdas) that a student's one-liner
# may well reproduce exactly: never a reason to fail a test.
_NESTED = ("cnnlib.*<locals>*",)

# graded function name (as the student writes it) -> what it may not run.  One entry per graded
# function of every assignment (grader/AUTHORING.md); the notebooks do not register anything.
# The table is read once, when this module is imported (before any cell of a notebook runs):
# changing it later, from a notebook or anywhere else, does not change what the tests apply.
GRADED: dict[str, Rule] = {
    # a1-convolution
    "output_size": Rule(forbid=("cnnlib.*",)),
    "conv2d_forward": Rule(forbid=("cnnlib.*",) + _OTHER_CONV),
    # a2-conv-backprop
    "numerical_gradient": Rule(forbid=("cnnlib.*",), allow=_NESTED),
    "conv2d_backward": Rule(forbid=("cnnlib.*", "torch.*", "scipy.signal.*", "scipy.ndimage.*"),
                            allow=_NESTED),
    # a3-pooling
    **{name: Rule(forbid=("cnnlib.*", "torch.*", "scipy.ndimage.*", "skimage.*"), allow=_NESTED)
       for name in ("max_pool2d_forward", "max_pool2d_backward",
                    "avg_pool2d_forward", "avg_pool2d_backward")},
    # a4-transposed-conv
    "transposed_output_size": Rule(forbid=("cnnlib.*",)),
    "upsample_by_zero_insertion": Rule(forbid=("cnnlib.*",) + _OTHER_CONV, allow=_NESTED),
    "conv_transpose2d_by_zero_insertion": Rule(forbid=("cnnlib.*",) + _OTHER_CONV, allow=_NESTED),
    # a5-train-a-cnn: meant to use cnnlib's layers, optimisers and training loop
    "build_model": Rule(forbid=()),
    "train_model": Rule(forbid=()),
    # a6-saturation: models built from cnnlib.nn may run, cnnlib.analysis may not
    "dead_relu_fraction": Rule(forbid=("cnnlib.analysis.*",), allow=_NESTED),
    "saturated_layers": Rule(forbid=("cnnlib.analysis.*",), allow=_NESTED),
    "weight_spectrum": Rule(forbid=("cnnlib.*",), allow=_NESTED),
    "condition_number": Rule(forbid=("cnnlib.*",), allow=_NESTED),
}

DEFAULT_RULE = Rule(forbid=("cnnlib.*",))

# C functions that a graded function has no business calling: they would move
# the work where the profiler cannot see it, switch the profiler off, or reach
# the tripwire's own state while it watches.
ESCAPES = frozenset({
    "sys.setprofile", "sys.settrace", "sys.getprofile", "sys.gettrace",
    "threading.setprofile", "threading.settrace",
    "_thread.start_new_thread", "_thread.start_joinable_thread",
    "posix.fork", "posix.forkpty", "posix.system", "posix.posix_spawn", "posix.posix_spawnp",
    "posix.execv", "posix.execve", "_posixsubprocess.fork_exec", "os.fork", "os.system",
    "gc.get_referrers", "gc.get_referents", "gc.get_objects",
})


# ---------------------------------------------------------------- what review flags
# Modules a CNN assignment has no use for, other than reaching into the grader.
MODULES = {"grader", "ctypes", "gc", "builtins", "importlib", "inspect", "IPython",
           # a thread or process started in one cell runs on while the tests call the functions,
           # out of the tripwire's sight (it watches the calling thread)
           "threading", "_thread", "concurrent", "multiprocessing", "queue", "asyncio", "signal",
           "subprocess"}
# Attributes that lead into interpreter internals, the profiler or IPython's cell machinery.
ATTRIBUTES = {"__closure__", "__globals__", "__code__", "__builtins__", "__dict__", "f_back",
              "f_globals", "f_locals", "tb_frame", "setprofile", "settrace", "getprofile",
              "gettrace", "get_referents", "get_referrers", "get_objects", "modules",
              "input_transformers_post", "input_transformers_cleanup", "run_cell", "events",
              "__array_ufunc__", "__array_function__", "user_ns", "history_manager", "kernel",
              "do_execute", "showtraceback", "set_custom_exc", "execution_count",
              # what starts a thread or a process, however the module was reached
              # (logging.threading is threading)
              "Thread", "Timer", "start_new_thread", "Process", "Popen", "fork", "forkpty",
              "posix_spawn", "posix_spawnp", "spawnv", "spawnl", "system", "popen"}
# The engine's modules that compute what the assignments ask for (sizes, convolutions, pooling,
# spectra): the tripwire watches graded functions, not a value a cell computes with them
# (a1's conv_out, a3's Duke answers, a5's receptive fields). cnnlib.nn, losses, optim, train and
# data are the tools a5 and a6 are built on.
ENGINE_ANSWERS = {"functional", "arch", "analysis", "reference", "im2col", "filters", "gradcheck"}
CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "vars", "globals", "locals"}
# getattr with a name built at run time ("mod" + "ules") hides which attribute it reads.
DYNAMIC_GETATTR = "getattr"
MAGIC_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput"}
# Methods that decide how an object compares or converts: a returned object that defines them
# could claim to equal anything (the grader reads plain data only, but a person should look).
DUNDERS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__",
           "__int__", "__index__", "__array__", "__array_ufunc__", "__array_function__", "__len__"}
# Names the test cells use: a notebook has no reason to bind them to something else (builtins a
# test relies on included; not ones a student may well use as a variable, such as sum or max).
TEST_NAMES = {"checks", "np", "numpy", "nn", "cnnlib", "isinstance", "issubclass", "type",
              "callable", "getattr", "hasattr", "AssertionError", "Exception", "BaseException",
              "float", "int", "bool", "str", "repr", "abs", "print"}
