"""Scoring: the test cells run here, on the trusted side, never in the student's kernel.

The kernel runs the student's cells and the instructor's locked cells; this module runs the
instructor's locked cells again and every test cell (visible and hidden parts), in a namespace
of its own where ``checks``, ``np`` and ``cnnlib`` are the grader's.  A name a test cell uses
that only the notebook defines (``conv2d_forward``, ``conv_out``) is looked up in the kernel
when the cell starts: a function becomes a :class:`Remote`, which calls the student's function
in the kernel (:mod:`grader.remote`) with the inputs drawn here; a value comes back as plain
data (:mod:`grader.plain`).  The expected answers are computed here, with the grader's cnnlib,
and compared here, so nothing the kernel binds, patches or prints can decide a score, and no
test code or expected value is ever sent to it.

A test cell passes when its code raises nothing; its only output is one error (name and
message, no traceback: it would quote the hidden test), which nbgrader scores as 0.
"""
from __future__ import annotations

import ast
import asyncio
import base64
import builtins
import contextlib
import io
import math
import threading
import zlib
from queue import Empty
from time import monotonic

from jupyter_core.utils import ensure_async

from . import checks, plain, remote

_here = threading.local()


def running() -> bool:
    """Whether the calling thread is running test code here, on the trusted side."""
    return getattr(_here, "running", False)


class KernelTrouble(Exception):
    """The kernel did not answer (a timeout, a crash): the cell is stopped, not failed."""

    def __init__(self, ename: str, message: str):
        super().__init__(message)
        self.ename = ename


class Remote:
    """A function of the student's, living in the kernel."""

    def __init__(self, name: str, tests: "TrustedTests"):
        self.__name__ = self.name = name
        self._tests = tests

    def graded_call(self, rule: str, args: tuple, kwargs: dict):
        """``(result, problem)`` of calling it under graded function ``rule``'s tripwire;
        the arrays and layers passed in are updated with what the call left in them."""
        return self._tests.call(self.name, rule, args, kwargs)

    def graded_calls(self, rule: str, cases: list) -> list:
        """Like graded_call for each ``(args, kwargs)`` of ``cases``, in one request to the kernel
        (a hidden test's loop over many small cases): a list of ``(result, problem)`` or
        exceptions, up to the first call that raised or tripped."""
        return self._tests.calls(self.name, rule, cases)

    def __call__(self, *args, **kwargs):
        result, problem = self.graded_call(self.name, args, kwargs)
        if problem:
            raise checks.IntegrityError(problem)
        return result

    def __reduce__(self):  # passed to another of the student's functions: the kernel's own
        return (remote.lookup, (self.name,))

    def __repr__(self) -> str:
        return f"<function {self.name} (in the notebook)>"


def _student_error(name: str, message: str) -> BaseException:
    """The student's exception, rebuilt as a built-in one of that name (NotImplementedError,
    RecursionError, ...) or a plain Exception subclass named after it."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except TypeError:  # one that takes other arguments (UnicodeDecodeError): a stand-in
            pass
    kind = type(name if name.isidentifier() else "Error", (Exception,), {"__module__": "submission"})
    return kind(message)


def _update(target, after) -> None:
    """Copy into ``target`` (an array or layer passed to the student's function) the state the
    call left it in, so that a test can see an input changed in place."""
    import numpy as np

    if isinstance(target, np.ndarray) and type(after) is np.ndarray:
        if after.shape == target.shape:
            target[...] = after
    elif type(target).__module__ == "cnnlib.nn" and type(after) is type(target):
        target.__dict__.clear()
        target.__dict__.update(after.__dict__)


def _free_names(tree: ast.AST) -> list[str]:
    """Names a cell reads and never binds."""
    loads, stores = _loads_and_stores(tree)
    return sorted(loads - stores)


def bound_names(sources) -> set[str]:
    """Names the given cells bind (assign, define, import)."""
    out = set()
    for source in sources:
        try:
            out |= _loads_and_stores(ast.parse(source))[1]
        except SyntaxError:
            pass
    return out


def _loads_and_stores(tree: ast.AST) -> tuple[set[str], set[str]]:
    loads, stores = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stores.add(node.name)
        elif isinstance(node, ast.arg):
            stores.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stores.update((a.asname or a.name).split(".")[0] for a in node.names)
    return loads, stores


class TrustedTests:
    """The trusted namespace of one notebook and the test cells run in it.

    ``ask(request) -> bytes`` sends one request to the kernel and returns its plain-data
    answer (raising :class:`KernelTrouble` when the kernel does not answer in time).
    ``own``: names the assignment's test and read-only cells bind; they are never looked up in
    the kernel, even when the cell that binds them has not run (yet) here: a test moved above
    the cell that draws its data must not read the notebook's data instead."""

    def __init__(self, ask, own: set[str] = frozenset()):
        import cnnlib.nn

        self.ask = ask
        self.own = set(own)
        self.nn = cnnlib.nn
        self.ns: dict = {"__name__": "__grader_tests__", "__builtins__": builtins}
        self.count = 0

    def _request(self, request: dict):
        try:
            return plain.decode(self.ask(request), self.nn)
        except plain.BadAnswer as exc:
            raise checks.GradingError(f"the notebook's answer could not be read: {exc}") from None

    def _seed(self, rule: str) -> int:
        self.count += 1
        return zlib.crc32(f"{rule}:{self.count}".encode()) & 0x7FFFFFFF

    def call(self, name: str, rule: str, args: tuple, kwargs: dict):
        out = self._request({"kind": "call", "name": name, "rule": rule, "args": list(args),
                             "kwargs": dict(kwargs), "seed": self._seed(rule)})
        return self._outcome(name, out, args, kwargs)

    def calls(self, name: str, rule: str, cases: list) -> list:
        cases = [(list(args), dict(kwargs or {})) for args, kwargs in cases]
        outs = self._request({"kind": "calls", "name": name, "rule": rule, "calls": cases,
                              "seed": self._seed(rule)})
        if not isinstance(outs, list) or not outs or len(outs) > len(cases):
            raise checks.GradingError(f"the notebook's answer for {name} could not be read")
        # The kernel stops early only after a call that raised or tripped; a list cut short
        # after a success would leave the remaining cases unchecked.
        if len(outs) < len(cases) and not (isinstance(outs[-1], dict) and "returned" not in outs[-1]):
            raise checks.GradingError(f"the notebook answered {len(outs)} of the {len(cases)} calls of {name}")
        results = []
        for out, (args, kwargs) in zip(outs, cases):
            try:
                results.append(self._outcome(name, out, args, kwargs))
            except Exception as exc:  # the student's exception, for the test to report
                results.append(exc)
        return results

    def _outcome(self, name: str, out, args, kwargs):
        if not isinstance(out, dict):
            raise checks.GradingError(f"the notebook's answer for {name} could not be read")
        if "integrity" in out:
            return None, str(out["integrity"])
        if "raised" in out:
            ename, message = (list(out["raised"]) + ["", ""])[:2]
            raise _student_error(str(ename), str(message))
        for target, after in zip(args, out.get("args") or []):
            _update(target, after)
        for key, after in (out.get("kwargs") or {}).items():
            if key in kwargs:
                _update(kwargs[key], after)
        return out.get("returned"), None

    def _bind(self, tree: ast.AST) -> None:
        """Look up in the kernel the names this cell needs and the trusted side lacks."""
        wanted = [n for n in _free_names(tree)
                  if n not in self.ns and n not in self.own and not hasattr(builtins, n)]
        if not wanted:
            return
        found = self._request({"kind": "names", "names": wanted})
        for name in wanted:
            entry = found.get(name) if isinstance(found, dict) else None
            if not entry or entry[0] == "missing":
                self.ns.pop(name, None)
            elif entry[0] == "function":
                self.ns[name] = Remote(name, self)
            elif len(entry) == 2:
                self.ns[name] = entry[1]

    def _exec(self, source: str, label: str) -> None:
        tree = ast.parse(source)
        self._bind(tree)
        _here.running = True
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(tree, f"<{label}>", "exec"), self.ns)
        finally:
            _here.running = False

    def setup(self, source: str, label: str) -> None:
        """Run an instructor's locked cell here too (its imports, data and helpers)."""
        try:
            self._exec(source, label)
        except KernelTrouble:
            raise
        except Exception:
            pass  # the kernel's run of the same cell is what the notebook shows

    def test(self, source: str, label: str) -> list[dict]:
        """Run a test cell; its outputs: [] when it passed, else one error."""
        try:
            self._exec(source, label)
        except KernelTrouble:
            raise
        except SyntaxError as exc:
            return [error("SyntaxError", f"the test cell does not parse: {exc.msg}")]
        except Exception as exc:
            return [error(type(exc).__name__, str(exc))]
        return []


def source_notebook(resources):
    """The assignment's source notebook of the notebook being graded (nbgrader's resources)."""
    from . import course

    info = (resources or {}).get("nbgrader") or {}
    path = course.COURSE / "source" / str(info.get("assignment")) / f"{info.get('notebook')}.ipynb"
    if not path.is_file():
        raise RuntimeError(f"the source notebook {path} is missing: the tests cannot be run")
    return path


def source_cells(resources) -> dict[str, str]:
    """grade id -> code of the assignment's source notebook, for the notebook being graded."""
    return cells_of(source_notebook(resources))


def cells_of(path) -> dict[str, str]:
    """grade id -> code of the test and read-only cells of the notebook at ``path``."""
    import nbformat

    cells = {}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") and cell.cell_type == "code" and not meta.get("solution"):
            cells[meta["grade_id"]] = cell.source  # solution cells run in the kernel only
    return cells


class KernelCalls:
    """How the grading process asks the kernel (a mixin of grader.execute.SandboxedExecute,
    which provides ``kc``, ``km``, ``_loop``, ``_deadline`` and ``_cell_limit``): one execute
    request per call, whose answer is the display message of type ``remote.MIME``."""

    def _ask(self, request: dict) -> bytes:
        """Send a request to the kernel from the test thread; wait for its answer."""
        future = asyncio.run_coroutine_threadsafe(self._ask_kernel(request), self._loop)
        return future.result()

    async def _ask_kernel(self, request: dict) -> bytes:
        import cloudpickle

        payload = base64.b64encode(cloudpickle.dumps(request)).decode()
        code = f"__import__('grader.remote', fromlist=['answer']).answer({payload!r})"
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        answer, failure, idle = None, None, False
        while not idle:
            left = self._deadline - monotonic()
            if left <= 0:
                await self._stop_call()
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=min(left, 0.5))
            except Empty:
                if not await ensure_async(self.km.is_alive()):
                    raise KernelTrouble("KernelDied", "the kernel died while this test ran "
                                                "(out of memory, a crash, or a resource limit); it "
                                                "was restarted for the next cells")
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "display_data" and isinstance(content.get("data", {}).get(remote.MIME), str):
                answer = content["data"][remote.MIME]  # the last one counts
            elif kind == "error":
                failure = f"{content.get('ename', 'Error')}: {str(content.get('evalue', ''))[:300]}"
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        if answer is None:
            raise checks.GradingError("the notebook's kernel did not answer the grader's call"
                               + (f" ({failure})" if failure else ""))
        try:
            return base64.b64decode(answer, validate=True)
        except ValueError:
            raise checks.GradingError("the notebook's kernel answered the grader's call with garbage") from None

    async def _stop_call(self) -> None:
        limit = math.ceil(self._cell_limit or 0)
        try:
            await self.km.interrupt_kernel()
        except Exception:
            pass
        if await self._responsive(self.interrupt_grace):
            raise KernelTrouble("CellTimeoutError", f"this test ran for more than {limit} s "
                                        "and was stopped")
        raise KernelTrouble("KernelKilled", f"this test ran for more than {limit} s and the "
                                    "kernel did not stop when interrupted; it was killed and "
                                    "restarted for the next cells")


def error(ename: str, evalue: str) -> dict:
    evalue = evalue if len(evalue) <= 2000 else evalue[:2000] + " [...]"
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
