"""Detect a graded function that runs the engine's own implementation.

A test calls the student's function through :func:`watch` (by way of
``grader.checks.run``).  While it runs, a profile hook (``sys.setprofile``) looks
at every Python frame and every C function that is entered and records the
forbidden ones; starting a thread or a process, or touching the profiler, is
recorded too.  Because it looks at the code that actually executes, it does not matter
how that code was reached: ``from cnnlib import ...``, ``importlib``,
``__import__``, ``sys.modules``, a reference captured before the tests started,
``importlib.reload``, or the source file read from disk and ``exec``-ed (the
last one is recognised by a fingerprint of the compiled code, whatever file
name it was compiled under).

Which functions are graded, and what each of them may not run, is declared in
``grader/rules.py`` (the anti-cheat rules, in one place); see ``grader/AUTHORING.md``.
:func:`watch` is sealed when this
module is imported (before a grading kernel runs any cell): it holds its own frozen
copy of the rules and of everything it calls, so that a notebook rewriting this
module, ``builtins`` or the standard library does not change what it checks.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import io
import marshal
import os
import re
import sys
import types
from pathlib import Path

from .rules import DEFAULT_RULE, ESCAPES, GRADED, Rule  # noqa: F401 (Rule: for the tests' patches)

HERE = Path(__file__).resolve().parent
CNNLIB_DIR = HERE.parent / "cnnlib"


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
def _compile(patterns: tuple[str, ...]):
    """One compiled regex's ``match`` (a C method) for a tuple of fnmatch patterns, or None."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def _engine_files() -> dict[tuple[int, int], str]:
    """(device, inode) -> 'cnnlib.module' for every file of the engine: a file is recognised
    whatever path, symbolic link or hard link it was reached by."""
    files: dict[tuple[int, int], str] = {}
    if CNNLIB_DIR.is_dir():
        for path in CNNLIB_DIR.rglob("*.py"):
            st = os.stat(path)
            files[(st.st_dev, st.st_ino)] = _cnnlib_module(str(path)) or "cnnlib"
    return files


def _seal(graded: dict[str, Rule], default: Rule, escapes: frozenset[str]):
    """The ``watch`` function the tests use, built now from the rules as they are now.

    Everything it needs at grading time is captured here, in closures: the rules (compiled
    to regexes), the escapes, the engine's files and fingerprints, and the C functions it
    calls (``sys.setprofile`` and the builtins).  At grading time it looks nothing up in a
    module, in ``builtins`` or in the standard library's Python code, so a notebook that
    rewrites ``GRADED``, ``watch``, ``fnmatch``, ``os.path``, ``builtins`` or
    ``sys.setprofile`` changes nothing.  (What a notebook can still do is in AUTHORING.md.)
    """
    set_profile, get_profile = sys.setprofile, sys.getprofile
    for fn in (set_profile, get_profile):
        if type(fn) is not types.BuiltinFunctionType:
            raise RuntimeError(f"grader.tripwire: sys.{fn.__name__} was replaced before the grader started")
    _len, _id, _type, _isinstance, _getattr, _hash, _repr, _tuple, _str = (
        len, id, type, isinstance, getattr, hash, repr, tuple, str)
    _int, _code_type, _module_type, _base_exception, _os_error, _recursion_error = (
        int, types.CodeType, types.ModuleType, BaseException, OSError, RecursionError)
    _stat, _listdir, _open = os.stat, os.listdir, io.open
    min_bytes = _MIN_CODE_BYTES

    def compiled(rule: Rule):
        return (_compile(rule.forbid), _compile(rule.allow),
                any(p.startswith("cnnlib") for p in rule.forbid))

    rules = {str(name): compiled(rule) for name, rule in graded.items()}
    fallback = compiled(default)
    escapes = frozenset(escapes)
    files = _engine_files()
    prints = dict(engine_fingerprints())

    def matches(qual, forbid, allow):
        if allow is not None and allow(qual) is not None:
            return False
        return forbid is not None and forbid(qual) is not None

    def fingerprint(code):
        consts = _tuple(fingerprint(c) if _isinstance(c, _code_type) else _repr(c)
                        for c in code.co_consts)
        return _hash((code.co_code, code.co_names, code.co_varnames, code.co_argcount,
                      code.co_kwonlyargcount, consts))

    def engine_module(filename):
        try:
            st = _stat(filename)
        except (_os_error, ValueError, TypeError):
            return None
        return files.get((st.st_dev, st.st_ino))

    def children():
        pids = []
        try:
            tasks = _listdir("/proc/self/task")
        except _os_error:
            return pids
        for task in tasks:
            try:
                with _open("/proc/self/task/" + task + "/children") as fh:
                    text = fh.read()
            except _os_error:
                continue
            pids.extend(_int(p) for p in text.split())
        return pids

    def record(where, what):
        if what not in where and _len(where) < 10:
            where.append(what)

    def make_hook(forbid, allow, use_prints, hits, escaped, on):
        code_cache: dict = {}   # id(code) -> verdict; the code objects are kept in `keep`
        c_cache: dict = {}      # see c_key
        keep: list = []         # code objects and module-level C functions: never arrays

        def classify_code(code, frame):
            module = engine_module(code.co_filename)
            if module is not None:
                qual = module + "." + code.co_qualname
                return qual if matches(qual, forbid, allow) else ""
            qual = _str(frame.f_globals.get("__name__", "?")) + "." + code.co_qualname
            if qual in escapes:
                return "!" + qual
            if not qual.startswith("cnnlib") and matches(qual, forbid, allow):
                return qual
            if use_prints and _len(code.co_code) >= min_bytes:
                copied = prints.get(fingerprint(code))
                if copied and matches(copied, forbid, allow):
                    return copied + " (a copy of its code)"
            return ""

        def classify_c(fn, owner):
            module = _getattr(fn, "__module__", None)
            if module is None and owner is not None:
                if _isinstance(owner, _module_type):
                    module = owner.__name__
                else:  # a method: numpy.ndarray.sum, torch.Tensor.unfold
                    module = _getattr(owner if _isinstance(owner, _type) else _type(owner),
                                      "__module__", None)
            qual = _str(module) + "." + _str(_getattr(fn, "__qualname__", _getattr(fn, "__name__", "?")))
            if qual in escapes:
                return ("escape", qual)
            if module and not _str(module).startswith("cnnlib") and matches(qual, forbid, allow):
                return ("hit", qual)
            return ("", "")

        def hook(frame, event, arg):
            if not on:
                return
            if event == "call":
                code = frame.f_code
                verdict = code_cache.get(_id(code))
                if verdict is None:
                    verdict = classify_code(code, frame)
                    code_cache[_id(code)] = verdict
                    keep.append(code)
                if verdict:
                    if verdict[0] == "!":
                        record(escaped, verdict[1:])
                    else:
                        record(hits, verdict)
            elif event == "c_call":
                # A bound method (`array.sum`) is a new object at every call and holds its
                # array: key it by its owner's type and name, and never keep it.
                owner = _getattr(arg, "__self__", None)
                lasting = owner is None or _isinstance(owner, _module_type)
                if lasting:
                    key = _id(arg)
                else:
                    key = (owner if _isinstance(owner, _type) else _type(owner), arg.__name__)
                found = c_cache.get(key)
                if found is None:
                    found = classify_c(arg, owner)
                    c_cache[key] = found
                    if lasting:
                        keep.append(arg)
                kind, qual = found
                if kind == "hit":
                    record(hits, qual)
                elif kind == "escape":
                    record(escaped, qual)

        return hook

    def problem(name, hits, escaped):
        if hits:
            return (f"{name} ran {hits[0]}: a graded function must be your own implementation, "
                    f"not a call to a library's version of it. No points for this test.")
        if escaped:
            return (f"{name} called {', '.join(escaped[:3])}: graded functions must "
                    f"compute in the notebook's own process and thread, without starting "
                    f"processes or threads or changing the profiler. No points for this test.")
        return None

    def watch(name, fn, *args, **kwargs):
        """Call ``fn(*args, **kwargs)`` under the tripwire of graded function ``name``.

        Returns ``(result, problem)``; ``problem`` is None or a message saying what
        the call ran that it may not run.  An exception from ``fn`` propagates, unless
        the tripwire fired, in which case the tripwire's message wins."""
        forbid, allow, use_prints = rules.get(name, fallback)
        if forbid is None:
            return fn(*args, **kwargs), None
        helpers = children()
        if helpers:
            return None, (f"the notebook left helper processes running (pids {helpers[:5]}) when "
                          f"{name} was tested: graded functions must compute in the notebook's own "
                          f"process. Stop them (or do not start them). No points for this test.")
        hits: list = []
        escaped: list = []
        on: list = []  # empty (false) while the hook must not record: our own calls
        hook = make_hook(forbid, allow, use_prints, hits, escaped, on)
        result, error, still_ours = None, None, False
        old = get_profile()
        set_profile(hook)
        on.append(True)
        try:
            result = fn(*args, **kwargs)
        except _base_exception as exc:  # re-raised below unless the tripwire fired
            error = exc
        finally:
            on.clear()
            still_ours = get_profile() is hook
            set_profile(old)
        if not still_ours:
            record(escaped, "sys.setprofile")
        if _isinstance(error, _recursion_error) and not hits:
            raise error  # honest code that recursed too deep: Python dropped the hook, not the student
        found = problem(name, hits, escaped)
        if found is None and error is not None:
            raise error
        return result, found

    return watch


# Sealed when this module is imported: in a grading kernel that is before the notebook's
# first cell (grader.kernel imports grader.checks first).  Tests call it through checks.run.
watch = _seal(GRADED, DEFAULT_RULE, ESCAPES)
