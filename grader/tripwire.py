"""Detect a graded function that runs the engine's own implementation.

A test calls the student's function through :func:`watch`.  While it runs, a
profile hook (``sys.setprofile`` and ``threading.setprofile``) looks at every
Python frame and every C function that is entered and records the forbidden
ones.  Because it looks at the code that actually executes, it does not matter
how that code was reached: ``from cnnlib import ...``, ``importlib``,
``__import__``, ``sys.modules``, a reference captured before the tests started,
``importlib.reload``, or the source file read from disk and ``exec``-ed (the
last one is recognised by a fingerprint of the compiled code, whatever file
name it was compiled under).

Which functions are graded, and what each of them may not run, is declared in
``GRADED`` below; see ``grader/AUTHORING.md``.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import marshal
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CNNLIB_DIR = HERE.parent / "cnnlib"


@dataclass(frozen=True)
class Rule:
    """Patterns (fnmatch, on ``module.qualname``) a graded function may not run."""

    forbid: tuple[str, ...] = ("cnnlib.*",)
    allow: tuple[str, ...] = ()
    reason: str = field(default="")


# Convolution routines of other libraries: using them is not implementing a convolution.
_OTHER_CONV = ("torch.*conv*", "torch.*unfold*", "scipy.signal.*", "scipy.ndimage.*")

# graded function name (as the student writes it) -> what it may not run
GRADED: dict[str, Rule] = {
    # a1-convolution
    "output_size": Rule(forbid=("cnnlib.*",)),
    "conv2d_forward": Rule(forbid=("cnnlib.*",) + _OTHER_CONV),
    # a2..a6: add one entry per graded function (see AUTHORING.md).  A function
    # that is meant to use cnnlib (say, a model built from cnnlib.nn layers)
    # gets Rule(forbid=()).
}

DEFAULT_RULE = Rule(forbid=("cnnlib.*",))

# C functions that a graded function has no business calling: they would move
# the work where the profiler cannot see it, or switch the profiler off.
_ESCAPES = {
    "sys.setprofile", "sys.settrace", "threading.setprofile", "threading.settrace",
    "_thread.start_new_thread", "_thread.start_joinable_thread",
    "posix.fork", "posix.forkpty", "posix.system", "posix.posix_spawn", "posix.posix_spawnp",
    "posix.execv", "posix.execve", "_posixsubprocess.fork_exec", "os.fork", "os.system",
}


def rule_for(name: str) -> Rule:
    return GRADED.get(name, DEFAULT_RULE)


def _matches(qualified: str, rule: Rule) -> bool:
    if any(fnmatch.fnmatchcase(qualified, p) for p in rule.allow):
        return False
    return any(fnmatch.fnmatchcase(qualified, p) for p in rule.forbid)


def _cnnlib_module(filename: str) -> str | None:
    """'cnnlib.functional' for a file inside the engine's package, else None."""
    try:
        path = Path(os.path.realpath(filename))
        rel = path.relative_to(CNNLIB_DIR)
    except (ValueError, OSError):
        return None
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(["cnnlib", *parts])


# ---------------------------------------------------------------- fingerprints
_MIN_CODE_BYTES = 40
_FINGERPRINTS: dict[int, str] | None = None


def _fingerprint(code: types.CodeType) -> int:
    consts = tuple(_fingerprint(c) if isinstance(c, types.CodeType) else repr(c)
                   for c in code.co_consts)
    return hash((code.co_code, code.co_names, code.co_varnames, code.co_argcount,
                 code.co_kwonlyargcount, consts))


def _walk(code: types.CodeType):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _walk(c)


def _engine_code(path: Path) -> types.CodeType:
    """The compiled code of one engine file: from its ``__pycache__`` entry when that was
    made from exactly this source (the checks of Python's import system), else compiled
    here (about 2 ms a file)."""
    source = path.read_bytes()
    try:
        with open(importlib.util.cache_from_source(str(path)), "rb") as fh:
            pyc = fh.read()
        flags = int.from_bytes(pyc[4:8], "little")
        if pyc[:4] == importlib.util.MAGIC_NUMBER and len(pyc) > 16:
            if flags == 0:
                st = path.stat()
                fresh = (int.from_bytes(pyc[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
                         and int.from_bytes(pyc[12:16], "little") == st.st_size & 0xFFFFFFFF
                         and st.st_size == len(source))
            else:
                fresh = bool(flags & 1) and pyc[8:16] == importlib.util.source_hash(source)
            if fresh:
                code = marshal.loads(pyc[16:])
                if isinstance(code, types.CodeType):
                    return code
    except (OSError, ValueError, EOFError, TypeError, NotImplementedError):
        pass
    return compile(source, str(path), "exec", dont_inherit=True)


def engine_fingerprints() -> dict[int, str]:
    """Fingerprint -> 'cnnlib.module.qualname' for every function of the engine.

    Computed from the engine's files on disk (their compiled code), so it does not
    depend on what the notebook did to the imported modules."""
    global _FINGERPRINTS
    if _FINGERPRINTS is None:
        table: dict[int, str] = {}
        if CNNLIB_DIR.is_dir():
            for path in sorted(CNNLIB_DIR.rglob("*.py")):
                module = _cnnlib_module(str(path)) or "cnnlib"
                try:
                    top = _engine_code(path)
                except (OSError, SyntaxError, ValueError):
                    continue
                for code in _walk(top):
                    if len(code.co_code) < _MIN_CODE_BYTES or code.co_name == "<module>":
                        continue
                    table.setdefault(_fingerprint(code), f"{module}.{code.co_qualname}")
        _FINGERPRINTS = table
    return _FINGERPRINTS


# ---------------------------------------------------------------- the watch
class Watch:
    """What a graded call ran that it should not have."""

    def __init__(self, name: str, rule: Rule):
        self.name = name
        self.rule = rule
        self.hits: list[str] = []
        self.escapes: list[str] = []
        self._code_cache: dict[int, str] = {}
        self._keep: list[object] = []
        self._c_cache: dict[int, tuple[str, str]] = {}
        self._prints = engine_fingerprints() if any(p.startswith("cnnlib") for p in rule.forbid) else {}
        self.active = False

    def _classify_code(self, code: types.CodeType, frame) -> str:
        module = _cnnlib_module(code.co_filename)
        if module is not None:
            qual = f"{module}.{code.co_qualname}"
            return qual if _matches(qual, self.rule) else ""
        qual = f"{frame.f_globals.get('__name__', '?')}.{code.co_qualname}"
        if qual in _ESCAPES:
            return "!" + qual
        if _matches(qual, self.rule) and not qual.startswith("cnnlib"):
            return qual
        if self._prints and len(code.co_code) >= _MIN_CODE_BYTES:
            copied = self._prints.get(_fingerprint(code))
            if copied and _matches(copied, self.rule):
                return f"{copied} (a copy of its code)"
        return ""

    def _classify_c(self, fn) -> tuple[str, str]:
        module = getattr(fn, "__module__", None)
        if module is None:
            owner = getattr(fn, "__self__", None)
            module = getattr(owner, "__name__", None) if isinstance(owner, types.ModuleType) else None
        qual = f"{module}.{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"
        if qual in _ESCAPES:
            return ("escape", qual)
        if module and not module.startswith("cnnlib") and _matches(qual, self.rule):
            return ("hit", qual)
        return ("", "")

    def hook(self, frame, event, arg):
        if not self.active:
            return
        if event == "call":
            code = frame.f_code
            verdict = self._code_cache.get(id(code))
            if verdict is None:
                verdict = self._classify_code(code, frame)
                self._code_cache[id(code)] = verdict
                self._keep.append(code)
            if verdict:
                if verdict.startswith("!"):
                    self._record(self.escapes, verdict[1:])
                else:
                    self._record(self.hits, verdict)
        elif event == "c_call":
            kind, qual = self._c_cache.get(id(arg), (None, ""))
            if kind is None:
                kind, qual = self._classify_c(arg)
                self._c_cache[id(arg)] = (kind, qual)
                self._keep.append(arg)
            if kind == "hit":
                self._record(self.hits, qual)
            elif kind == "escape":
                self._record(self.escapes, qual)

    @staticmethod
    def _record(where: list[str], what: str) -> None:
        if what not in where and len(where) < 10:
            where.append(what)

    def problem(self) -> str | None:
        """A student-facing sentence, or None when the call was clean."""
        if self.hits:
            return (f"{self.name} ran {self.hits[0]}: a graded function must be your own implementation, "
                    f"not a call to a library's version of it. No points for this test.")
        if self.escapes:
            return (f"{self.name} called {', '.join(self.escapes[:3])}: graded functions must "
                    f"compute in the notebook's own process and thread, without starting "
                    f"processes or threads or changing the profiler. No points for this test.")
        return None


def child_processes() -> list[int]:
    """Live child processes of this process (Linux; empty elsewhere)."""
    pids: list[int] = []
    task_dir = Path("/proc/self/task")
    if not task_dir.is_dir():
        return pids
    for task in task_dir.iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.extend(int(p) for p in text.split())
    return pids


def watch(name: str, fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` under the tripwire of graded function ``name``.

    Returns ``(result, problem)``; ``problem`` is None or a message saying what
    the call ran that it may not run.  An exception from ``fn`` propagates, unless
    the tripwire fired, in which case the tripwire's message wins."""
    w = Watch(name, rule_for(name))
    if not w.rule.forbid:
        return fn(*args, **kwargs), None
    helpers = child_processes()
    if helpers:
        return None, (f"the notebook left helper processes running (pids {helpers[:5]}) when "
                      f"{name} was tested: graded functions must compute in the notebook's own "
                      f"process. Stop them (or do not start them). No points for this test.")
    old_sys, old_thread = sys.getprofile(), threading.getprofile()
    result, error = None, None
    threading.setprofile(w.hook)
    sys.setprofile(w.hook)
    w.active = True
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # re-raised below unless the tripwire fired
        error = exc
    finally:
        w.active = False
        still_ours = sys.getprofile() == w.hook
        sys.setprofile(old_sys)
        threading.setprofile(old_thread)
    if not still_ours:
        w._record(w.escapes, "sys.setprofile")
    problem = w.problem()
    if problem is None and error is not None:
        raise error
    return result, problem
