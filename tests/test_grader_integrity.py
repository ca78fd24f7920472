"""The integrity tripwire and the private reference, in-process (fast)."""
from __future__ import annotations

import importlib
import pathlib
import sys
import threading
import types

import numpy as np
import pytest

from grader import checks, sandbox, tripwire

X = np.random.default_rng(0).standard_normal((2, 3, 7, 9))
W = np.random.default_rng(1).standard_normal((4, 3, 3, 2))
B = np.random.default_rng(2).standard_normal(4)


def mine(x, w, b, stride=1, padding=0):
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwuv,fcuv->nfhw", win, w) + (0 if b is None else b[None, :, None, None])


def compare(fn):
    F = checks.reference("functional").functional
    checks.compare("conv2d_forward", fn, F.conv2d, dict(x=X, w=W, b=B), kwargs=dict(stride=2, padding=1))


def test_honest_implementation_passes():
    compare(mine)


def _engine():
    return importlib.import_module("cnnlib.functional")


CAPTURED = _engine().conv2d


@pytest.mark.parametrize("cheat", [
    lambda x, w, b, stride=1, padding=0: _engine().conv2d(x, w, b, stride, padding),
    lambda x, w, b, stride=1, padding=0: CAPTURED(x, w, b, stride, padding),
    lambda x, w, b, stride=1, padding=0: getattr(__import__("cnnlib.functional", fromlist=["_"]),
                                                 "conv" + "2d")(x, w, b, stride, padding),
    lambda x, w, b, stride=1, padding=0: sys.modules["cnnlib.functional"].conv2d(x, w, b, stride, padding),
    lambda x, w, b, stride=1, padding=0: importlib.import_module("cnnlib.reference").conv2d_naive(
        x, w, b, stride=stride, padding=padding),
], ids=["import", "captured", "__import__", "sys.modules", "naive-reference"])
def test_calling_the_engine_is_caught(cheat):
    with pytest.raises(checks.IntegrityError, match="conv2d_forward ran cnnlib"):
        compare(cheat)


def test_thread_and_profiler_tricks_are_caught():
    def threaded(x, w, b, stride=1, padding=0):
        out = []
        t = threading.Thread(target=lambda: out.append(mine(x, w, b, stride, padding)))
        t.start()
        t.join()
        return out[0]

    def unprofiled(x, w, b, stride=1, padding=0):
        sys.setprofile(None)
        return mine(x, w, b, stride, padding)

    for fn in (threaded, unprofiled):
        with pytest.raises(checks.IntegrityError, match="own process and thread"):
            compare(fn)


def test_exec_of_the_engine_source_is_caught():
    module = types.ModuleType("copied")
    module.__package__ = "cnnlib"
    sys.modules["copied"] = module
    path = pathlib.Path(tripwire.CNNLIB_DIR / "arch.py")
    exec(compile(path.read_text(), "notebook.py", "exec"), module.__dict__)

    def output_size(n, k, stride=1, padding=0, dilation=1):
        return module.output_size(n, k, stride, padding, dilation)

    with pytest.raises(checks.IntegrityError, match="a copy of its code"):
        checks.check_value("output_size", output_size, (10, 3), 4, kwargs=dict(stride=2))


def test_reference_ignores_a_patched_engine(monkeypatch):
    engine = _engine()
    monkeypatch.setattr(engine, "conv2d", lambda *a, **k: np.zeros(1))
    F = checks.reference("functional").functional
    assert F.conv2d is not engine.conv2d
    assert F.conv2d(X, W, B).shape == (2, 4, 5, 8)


def test_messages_say_what_to_fix():
    def no_stride(x, w, b, stride=1, padding=0):
        return mine(x, w, b, 1, padding)

    with pytest.raises(checks.GradingError) as info:
        checks.check_shape("conv2d_forward", no_stride,
                           dict(x=np.zeros((1, 1, 5, 5)), w=np.zeros((1, 1, 3, 3)), b=None),
                           (1, 1, 2, 2), kwargs=dict(stride=2))
    assert str(info.value) == ("conv2d_forward(x: shape (1, 1, 5, 5), w: shape (1, 1, 3, 3), b=None, "
                               "stride=2) returned shape (1, 1, 3, 3), expected (1, 1, 2, 2)")
    with pytest.raises(checks.GradingError, match="not implemented yet"):
        checks.check_value("output_size", lambda *a: (_ for _ in ()).throw(NotImplementedError()),
                           (7, 3), 5)


def test_unrestricted_functions_may_use_the_engine(monkeypatch):
    monkeypatch.setitem(tripwire.GRADED, "build_model", tripwire.Rule(forbid=()))
    assert checks.run("build_model", lambda: _engine().relu(np.ones(2))).tolist() == [1.0, 1.0]


def test_missing_bubblewrap_is_loud(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    monkeypatch.setattr(sandbox, "_warned", False)
    km = sandbox.SandboxKernelManager(sandbox="auto")
    km._runtime = pathlib.Path("/nonexistent")
    km.connection_file = "/nonexistent/c.json"
    with pytest.warns(RuntimeWarning):
        cmd = km.format_kernel_cmd()
    assert "bwrap" not in cmd and "grader.kernel" in cmd and "--memory-mb=2048" in cmd
    assert "WITHOUT a" in capsys.readouterr().err
    km.sandbox = "bwrap"
    with pytest.raises(RuntimeError):
        km.format_kernel_cmd()
