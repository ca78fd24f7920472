"""The kernel's half of a graded call: run one of the student's functions, hand back plain data.

The trusted side (:mod:`grader.scoring`) sends each request as a pickle inside the code of an
execute request; :func:`answer`, running in the student's kernel, looks names up in the
notebook's namespace, calls the student's function under the integrity tripwire
(:mod:`grader.tripwire`) and publishes the outcome as plain data (:mod:`grader.plain`) in a
display message of type ``MIME``.  Student code can replace anything here; all it changes is
what its own function is reported to have returned, which the trusted side then checks like
any other answer.  No test code and no expected value ever reaches this process.
"""
from __future__ import annotations

from grader import plain, tripwire

MIME = "application/x-grader-answer"
# The tripwire as it was when this module was imported: in a grading kernel, before the
# notebook's first cell (grader.kernel --preload), so rebinding grader.tripwire.watch later
# does not switch it off.
_watch = tripwire.watch


def _namespace() -> dict:
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell.user_ns if shell is not None else sys.modules["__main__"].__dict__


def lookup(name: str):
    """The notebook's ``name`` (a function of the student's passed to another one)."""
    return _namespace().get(name)


def _after(value):
    """What a call left in an argument that it may have changed in place."""
    import numpy as np

    if isinstance(value, np.ndarray) or type(value).__module__ == "cnnlib.nn":
        return value
    return None


def _call(request: dict, ns: dict) -> dict:
    import sys

    fn = ns.get(request["name"])
    if fn is None or not callable(fn):
        return {"raised": ["NameError", f"{request['name']} is not defined: run the cell that defines it"]}
    engine = sys.modules.get("cnnlib")
    if engine is not None and callable(getattr(engine, "seed", None)):
        engine.seed(request["seed"])  # a model built by the student's code starts the same way each run
    args, kwargs = request["args"], request["kwargs"]
    try:
        result, problem = _watch(request["rule"], fn, *args, **kwargs)
    except BaseException as exc:  # the student's exception, reported by name and message
        return {"raised": [type(exc).__name__, str(exc)[:2000]]}
    if problem:
        return {"integrity": problem}
    return {"returned": result, "args": [_after(a) for a in args],
            "kwargs": {k: _after(v) for k, v in kwargs.items()}}


def _calls(request: dict, ns: dict) -> list:
    """Several calls of one function, in order, up to the first that raises or trips."""
    outcomes = []
    for args, kwargs in request["calls"]:
        outcome = _call(dict(request, args=args, kwargs=kwargs), ns)
        outcomes.append(outcome)
        if "returned" not in outcome:
            break
    return outcomes


def _names(request: dict, ns: dict) -> dict:
    out = {}
    for name in request["names"]:
        if name not in ns:
            out[name] = ["missing"]
        elif callable(ns[name]) and type(ns[name]).__module__ != "cnnlib.nn":
            out[name] = ["function"]
        else:
            out[name] = ["value", ns[name]]
    return out


def answer(request: str) -> None:
    """Serve one request (base64 of a pickle) and publish the outcome."""
    import base64
    import pickle

    from IPython.display import publish_display_data

    req = pickle.loads(base64.b64decode(request))
    ns = _namespace()
    serve = {"call": _call, "calls": _calls, "names": _names}[req["kind"]]
    outcome = serve(req, ns)
    publish_display_data({MIME: base64.b64encode(plain.encode(outcome)).decode()})
