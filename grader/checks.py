"""Helpers for the test cells of the course's assignments.

The ``check_*`` functions return None on purpose: a test cell whose last line is an
expression would show a value, and nbgrader reads a number there as partial credit.

Public tests (students see them) and hidden tests (they run at grading time)
use the same few functions, so every failure reads the same way and tells the
student what to fix, e.g.::

    conv2d_forward(x: shape (1, 1, 5, 5), w: shape (1, 1, 3, 3), b=None, stride=2)
    returned shape (1, 1, 3, 3), expected (1, 1, 2, 2)

Every call of a student's function goes through :func:`run`, which applies the
integrity tripwire of :mod:`grader.tripwire`.  When grading, these helpers run on the
trusted side (:mod:`grader.scoring`), never in the student's kernel: the student's
functions are called there remotely and hidden tests take expected values from
:func:`reference`, the grader's own cnnlib.
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import tripwire

__all__ = [
    "GradingError", "IntegrityError", "run", "reference", "describe",
    "check_value", "check_shape", "check_array", "compare", "compare_many", "expect",
]


class GradingError(AssertionError):
    """A test failed; the message says what to fix."""


class IntegrityError(GradingError):
    """The graded function ran code it may not run (see grader.tripwire)."""


# ---------------------------------------------------------------- describing calls
def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 4 and value.ndim <= 1:
            return np.array2string(value, precision=3, separator=", ")
        return f"shape {tuple(value.shape)}"
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, (tuple, list)) and len(value) <= 6:
        return repr(tuple(_plain(v) for v in value)) if isinstance(value, tuple) else repr([_plain(v) for v in value])
    return type(value).__name__


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def describe(name: str, args: Sequence | Mapping = (), kwargs: Mapping | None = None) -> str:
    """'conv2d_forward(x: shape (1, 1, 5, 5), w: shape (1, 1, 3, 3), stride=2)'."""
    parts = []
    if isinstance(args, Mapping):
        for key, value in args.items():
            shown = _show(value)
            parts.append(f"{key}: {shown}" if shown.startswith("shape") else f"{key}={shown}")
    else:
        parts.extend(_show(v) for v in args)
    parts.extend(f"{k}={_show(v)}" for k, v in (kwargs or {}).items())
    return f"{name}({', '.join(parts)})"


def _positional(args: Sequence | Mapping) -> list:
    values = list(args.values()) if isinstance(args, Mapping) else list(args)
    return [v.copy() if isinstance(v, np.ndarray) else v for v in values]


# ---------------------------------------------------------------- calling
def run(name: str, fn: Callable, *args, **kwargs):
    """Call the student's ``fn`` under the integrity tripwire of graded function ``name``.

    When grading, ``fn`` is a grader.scoring.Remote: the call runs in the student's kernel
    and the result comes back as plain data.  In a notebook of one's own it runs here."""
    if not callable(fn):
        raise GradingError(f"{name} is not a function (it is {type(fn).__name__}); "
                           f"run the cell that defines it")
    from . import scoring

    if isinstance(fn, scoring.Remote):
        result, problem = fn.graded_call(name, args, kwargs)
    elif scoring.running():  # test code wrapping the student's function: its calls are remote
        result, problem = fn(*args, **kwargs), None
    else:
        result, problem = tripwire.watch(name, fn, *args, **kwargs)
    if problem:
        raise IntegrityError(problem)
    return result


def _call(name, fn, args, kwargs):
    what = describe(name, args, kwargs)
    try:
        got = run(name, fn, *_positional(args), **dict(kwargs or {}))
    except NotImplementedError:
        raise GradingError(f"{name} is not implemented yet (it raised NotImplementedError)") from None
    except GradingError:
        raise
    except Exception as exc:
        raise GradingError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    return what, got


# ---------------------------------------------------------------- checking
def expect(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise GradingError(message)


def check_value(name: str, fn: Callable, args: Sequence | Mapping, want: Any,
                kwargs: Mapping | None = None, hint: str = "") -> None:
    """The call returns exactly ``want`` (numbers compare by value, ints stay ints)."""
    what, got = _call(name, fn, args, kwargs)
    if isinstance(got, np.ndarray) and not isinstance(want, np.ndarray):
        raise GradingError(f"{what} returned an array of shape {got.shape}, expected {want!r}")
    if isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        if isinstance(got, float) or (isinstance(got, np.floating)):
            raise GradingError(f"{what} returned {got!r}, a float; expected the integer {want}"
                               + (f" ({hint})" if hint else ""))
    if got != want:
        raise GradingError(f"{what} returned {_plain(got)!r}, expected {want!r}"
                           + (f" ({hint})" if hint else ""))


def _as_array(what: str, got: Any) -> np.ndarray:
    if not isinstance(got, np.ndarray):
        raise GradingError(f"{what} returned {type(got).__name__}, expected a numpy array")
    # a subclass could answer comparisons and ufuncs as it likes: look at its data only
    return got.view(np.ndarray) if type(got) is not np.ndarray else got


def check_shape(name: str, fn: Callable, args: Sequence | Mapping, shape: tuple,
                kwargs: Mapping | None = None) -> None:
    """The call returns an array of shape ``shape``."""
    what, got = _call(name, fn, args, kwargs)
    got = _as_array(what, got)
    if tuple(got.shape) != tuple(shape):
        raise GradingError(f"{what} returned shape {tuple(got.shape)}, expected {tuple(shape)}")


def _close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol))


def _compare_arrays(what: str, got: Any, want: np.ndarray, rtol: float, atol: float,
                    hints: Iterable[tuple[str, Any]] = ()) -> None:
    got = _as_array(what, got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise GradingError(f"{what} returned shape {tuple(got.shape)}, expected {tuple(want.shape)}"
                           + _hint(got, hints, rtol, atol))
    if not np.all(np.isfinite(got)):
        raise GradingError(f"{what} returned NaN or infinite values")
    if not _close(got, want, rtol, atol):
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
        raise GradingError(
            f"{what} returned wrong values: largest error {err[idx]:.3g} at index {idx} "
            f"(got {got[idx]:.6g}, expected {want[idx]:.6g})" + _hint(got, hints, rtol, atol))


def _hint(got: np.ndarray, hints: Iterable[tuple[str, Any]], rtol: float, atol: float) -> str:
    for message, alternative in hints or ():
        try:
            alt = alternative() if callable(alternative) else alternative
            if _close(got, np.asarray(alt), rtol, atol):
                return f"; hint: {message}"
        except Exception:
            continue
    return ""


def check_array(name: str, fn: Callable, args: Sequence | Mapping, want: Any,
                kwargs: Mapping | None = None, rtol: float = 1e-6, atol: float = 1e-8,
                hints: Iterable[tuple[str, Any]] = ()) -> None:
    """The call returns an array equal to ``want`` (within tolerance).

    ``hints`` is a list of ``(message, array)``: when the student's result equals
    one of these arrays instead, the message is added (e.g. a flipped kernel)."""
    what, got = _call(name, fn, args, kwargs)
    _compare_arrays(what, got, want, rtol, atol, hints)


def compare(name: str, fn: Callable, reference_fn: Callable, args: Sequence | Mapping,
            kwargs: Mapping | None = None, rtol: float = 1e-6, atol: float = 1e-8,
            hints: Iterable[tuple[str, Any]] = ()) -> None:
    """The student's ``fn`` and ``reference_fn`` agree on these arguments."""
    want = reference_fn(*_positional(args), **dict(kwargs or {}))
    if isinstance(want, np.ndarray):
        check_array(name, fn, args, want, kwargs, rtol, atol, hints)
    else:
        check_value(name, fn, args, want, kwargs)


def compare_many(name: str, fn: Callable, reference_fn: Callable, cases: Iterable,
                 rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """:func:`compare` on each ``(args, kwargs)`` of ``cases``.  When grading, the student's
    function is called for all of them in one request to the notebook's kernel."""
    from . import scoring

    cases = [(args, dict(kwargs or {})) for args, kwargs in cases]
    if not isinstance(fn, scoring.Remote):
        for args, kwargs in cases:
            compare(name, fn, reference_fn, args, kwargs, rtol, atol)
        return
    sent = [(_positional(args), kwargs) for args, kwargs in cases]
    for (args, kwargs), outcome in zip(cases, fn.graded_calls(name, sent)):
        compare(name, _Answered(outcome), reference_fn, args, kwargs, rtol, atol)


class _Answered:
    """A call's outcome already obtained from the kernel, replayed for the usual checks."""

    def __init__(self, outcome):
        self.outcome = outcome

    def __call__(self, *args, **kwargs):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        result, problem = self.outcome
        if problem:
            raise IntegrityError(problem)
        return result


# ---------------------------------------------------------------- the reference
def reference(*modules: str) -> SimpleNamespace:
    """The grader's cnnlib: ``reference("functional", "arch").functional.conv2d``.

    Hidden tests run on the trusted side (grader.scoring), where this is the engine as
    shipped; the notebook's kernel never sees it."""
    modules = modules or ("functional",)
    return SimpleNamespace(**{m: importlib.import_module(f"cnnlib.{m}") for m in modules})
