"""The integrity tripwire and the private reference, in-process (fast)."""
from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from grader import checks, remote, review, rules, sandbox, tripwire

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
    module.__package__ = "cnnlib.arch"
    sys.modules["copied"] = module
    path = pathlib.Path(tripwire.CNNLIB_DIR / "arch" / "sizes.py")
    exec(compile(path.read_text(), "notebook.py", "exec"), module.__dict__)

    def output_size(n, k, stride=1, padding=0, dilation=1):
        return module.output_size(n, k, stride, padding, dilation)

    with pytest.raises(checks.IntegrityError, match="a copy of its code"):
        checks.check_value("output_size", output_size, (10, 3), 4, kwargs=dict(stride=2))


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


def test_the_engine_stays_visible_when_the_checkout_lives_in_a_hidden_folder(tmp_path):
    """A clone under /tmp, /root or /home is hidden with its parent folder; the hidden tests'
    reference (cnnlib) and the grader's modules must still be there, the tests folder not."""
    km = sandbox.SandboxKernelManager(sandbox="bwrap", extra_hidden_paths=[str(sandbox.REPO.parent)])
    km._scratch, km._runtime = tmp_path, tmp_path
    probe = ("import pathlib, sys\n"
             "from grader import checks\n"
             "assert checks.reference('functional').functional.conv2d is not None\n"
             "repo = pathlib.Path(sys.argv[1])\n"
             "assert not (repo / 'tests').exists() or not any((repo / 'tests').iterdir())\n"
             "print('ok')\n")
    result = subprocess.run(km.bwrap_command() + ["--", sys.executable, "-c", probe, str(sandbox.REPO)],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("source,expected", [
    ("import ctypes\nctypes.pythonapi.PyFrame_LocalsToFast", ["imports ctypes"]),
    ("get_ipython().input_transformers_post.append(lambda lines: [])",
     ["uses .input_transformers_post", "uses get_ipython"]),
    ("def __eq__(self, other):\n    return True", ["defines __eq__"]),
    ("checks = None\nisinstance = lambda *a: True", ["rebinds checks", "rebinds isinstance"]),
    ("get_ipython().user_ns['_ih']", ["uses .user_ns", "uses get_ipython"]),
    ("import gc\nfor o in gc.get_objects(): pass", ["imports gc", "uses .get_objects"]),
    ("np.allclose = lambda *a, **k: True", ["assigns np.allclose"]),
    ("watch.__closure__[0].cell_contents = None", ["uses .__closure__"]),
    ("exec(open('x.py').read())", ["calls exec()"]),
    # seen in an attack: a worker thread started in one cell ran cnnlib for the graded functions
    ("import threading, queue\nthreading.Thread(target=f, daemon=True).start()",
     ["imports threading", "imports queue", "uses .Thread"]),
    # the same thread, from a module that holds threading under another name
    ("from logging import threading as _t\n_t.Thread(target=f, daemon=True).start()", ["uses .Thread"]),
    # a value the assignment asks for, computed by the engine (not a graded function: no tripwire)
    ("from cnnlib.arch import output_size as _os\nconv_out = (_os(224, 7, 2, 3),) * 2",
     ["imports cnnlib.arch"]),
    ("from cnnlib import functional, nn\nimport cnnlib\nY = cnnlib.reference.conv2d_naive(X, W)",
     ["imports cnnlib.functional", "uses cnnlib.reference"]),
    # and grader.remote patched through names built at run time
    ("import sys\nr = getattr(sys, 'mod' + 'ules')['grader.' + 'remote']\nsetattr(r, '_calls', f)",
     ["calls setattr()", "calls getattr() with a computed name"]),
])
def test_review_names_what_looks_like_tampering(source, expected):
    assert review.findings(source, {"np"}) == expected


@pytest.mark.parametrize("source", [
    "import numpy as np\ndef conv2d_forward(x, w, b, stride=1, padding=0):\n    return np.zeros(1)",
    "%timeit conv2d_forward(x, w, None)",       # a magic becomes get_ipython().run_line_magic
    "y = x.copy()\ny[0] = 1\nmodel.fc.weight = w",  # attributes of objects, not of modules
    "def f(:",                                  # does not parse: cannot run either
    "from cnnlib import nn, optim\nfrom cnnlib.losses import CrossEntropyLoss",  # a5's tools
])
def test_review_leaves_ordinary_code_alone(source):
    assert review.findings(source, {"np"}) == []


def test_the_instructors_solutions_need_no_review():
    for notebook in sorted((sandbox.REPO / "grader" / "source").glob("*/*.ipynb")):
        assert review.review_note(notebook) is None, notebook


# ---------------------------------------------------------------- a notebook attacks the grader
# Each attack is what a notebook cell could run before the hidden tests: it rewrites the grader's
# rules or helpers so that a function calling the engine goes unnoticed. ``patch`` sets a module
# attribute through the module's __dict__ (a read-only module does not stop that) and undoes it
# after the test.
def _patch(monkeypatch, module, name, value):
    monkeypatch.setitem(vars(module), name, value)


def _no_rules(monkeypatch):
    monkeypatch.setitem(tripwire.GRADED, "conv2d_forward", tripwire.Rule(forbid=()))
    _patch(monkeypatch, tripwire, "DEFAULT_RULE", tripwire.Rule(forbid=()))


def _watch(monkeypatch):
    _patch(monkeypatch, tripwire, "watch", lambda name, fn, *a, **k: (fn(*a, **k), None))


def _fake_module(monkeypatch):
    fake = types.ModuleType("grader.tripwire")
    fake.watch = lambda name, fn, *a, **k: (fn(*a, **k), None)
    monkeypatch.setitem(sys.modules, "grader.tripwire", fake)
    _patch(monkeypatch, checks, "tripwire", fake)


def _checks_run(monkeypatch):
    _patch(monkeypatch, checks, "run", lambda name, fn, *a, **k: fn(*a, **k))


def _watch_class(monkeypatch):
    watch_class = getattr(tripwire, "Watch", None)
    if watch_class is not None:  # the tripwire this replaced kept its verdict in a class
        monkeypatch.setattr(watch_class, "problem", lambda self: None)
    else:
        _patch(monkeypatch, tripwire, "Watch", type("Watch", (), {"problem": lambda self: None}))


def _fnmatch(monkeypatch):
    import fnmatch
    monkeypatch.setattr(fnmatch, "fnmatchcase", lambda name, pattern: False)
    _patch(monkeypatch, tripwire, "_FINGERPRINTS", {})


def _realpath(monkeypatch):
    monkeypatch.setattr(os.path, "realpath", lambda path, **k: "/elsewhere/" + os.path.basename(path))
    _patch(monkeypatch, tripwire, "_FINGERPRINTS", {})


def _builtin_any(monkeypatch):
    import builtins
    real_any = builtins.any

    def any(iterable):  # False for the grader, the real answer for everybody else
        return False if sys._getframe(1).f_globals.get("__name__", "").startswith("grader") else real_any(iterable)

    monkeypatch.setattr(builtins, "any", any)


def _fake_profiler(monkeypatch):
    installed = [None]
    monkeypatch.setattr(sys, "setprofile", lambda fn: installed.__setitem__(0, fn))
    monkeypatch.setattr(sys, "getprofile", lambda: installed[0])
    monkeypatch.setattr(threading, "setprofile", lambda fn: None)


ATTACKS = {"GRADED": _no_rules, "watch": _watch, "sys.modules": _fake_module,
           "checks.run": _checks_run, "Watch.problem": _watch_class, "fnmatch": _fnmatch,
           "os.path.realpath": _realpath, "builtins.any": _builtin_any,
           "sys.setprofile": _fake_profiler}


def in_kernel(fn) -> dict:
    """What the kernel's half of a graded call (grader.remote) reports for ``fn``."""
    request = {"name": "conv2d_forward", "rule": "conv2d_forward", "args": [X, W, B],
               "kwargs": dict(stride=2, padding=1), "seed": 0}
    return remote._call(request, {"conv2d_forward": fn})


@pytest.mark.parametrize("attack", ATTACKS)
def test_rewriting_the_grader_before_the_tests_changes_nothing(monkeypatch, attack):
    """The kernel's half keeps the tripwire it imported before the notebook's first cell."""
    ATTACKS[attack](monkeypatch)
    found = in_kernel(lambda x, w, b, stride=1, padding=0: CAPTURED(x, w, b, stride, padding))
    assert "conv2d_forward ran cnnlib" in found.get("integrity", ""), found
    assert "returned" in in_kernel(mine)  # and an honest function still passes


def test_emptied_escapes_do_not_let_a_bare_thread_through(monkeypatch):
    import _thread
    monkeypatch.setattr(rules, "ESCAPES", set())

    def in_a_bare_thread(x, w, b, stride=1, padding=0):
        out, done = [], _thread.allocate_lock()
        done.acquire()
        _thread.start_new_thread(lambda: (out.append(CAPTURED(x, w, b, stride, padding)), done.release()), ())
        done.acquire()
        return out[0]

    with pytest.raises(checks.IntegrityError, match="own process and thread"):
        compare(in_a_bare_thread)


def test_the_tripwire_keeps_no_arrays_alive():
    """A graded function's temporaries are freed as it goes: the tripwire keeps no reference to
    them (it used to keep every bound method it saw, and with it its array, until the call ended)."""
    import weakref

    def makes_temporaries():
        refs = []
        for _ in range(5):
            a = np.ones(1000)
            a.sum()
            a.reshape(10, 100).mean(axis=0)
            refs.append(weakref.ref(a))
            del a
        return [r() is None for r in refs]

    assert checks.run("conv2d_forward", makes_temporaries) == [True] * 5


def test_every_graded_function_is_registered_in_the_tripwire_not_in_a_notebook():
    import json

    source = pathlib.Path(tripwire.__file__).parent / "source"
    graded = []
    for path in sorted(source.glob("*/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"])
            assert "tripwire" not in text and "GRADED" not in text, (path.name, text[:200])
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id", "")
            if cell["cell_type"] == "code" and cell["metadata"]["nbgrader"].get("solution") \
                    and text.startswith(f"def {gid}("):
                graded.append(gid)
    assert len(graded) == 17, graded
    assert sorted(set(graded) - set(tripwire.GRADED)) == []
    assert tripwire.GRADED["build_model"].forbid == () and tripwire.GRADED["train_model"].forbid == ()


def test_the_engine_reached_through_a_symbolic_link_is_the_engine(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "mylib").symlink_to(tripwire.CNNLIB_DIR, target_is_directory=True)
    # Named inside cnnlib.arch so that the file's relative import (.._params) resolves.
    name = "cnnlib.arch.mylib_sizes"
    spec = importlib.util.spec_from_file_location(name, tmp_path / "mylib" / "arch" / "sizes.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)

    def output_size(n, k, stride=1, padding=0, dilation=1):
        return module.output_size(n, k, stride, padding, dilation)

    with pytest.raises(checks.IntegrityError, match=r"ran cnnlib\.arch\.sizes\.output_size: "):
        checks.check_value("output_size", output_size, (10, 3), 4, kwargs=dict(stride=2))


def test_looking_for_the_tripwire_during_the_call_is_an_escape():
    import gc

    def looks(x, w, b, stride=1, padding=0):
        gc.get_referents(sys.getprofile())
        return mine(x, w, b, stride, padding)

    with pytest.raises(checks.IntegrityError, match="sys.getprofile, gc.get_referents"):
        compare(looks)


# ---------------------------------------------------------------- the trusted side reads the reply
def _replying(*outcomes):
    from grader import plain, scoring
    return scoring.TrustedTests(lambda request: plain.encode(list(outcomes)))


def test_a_reply_cut_short_after_a_success_fails_the_test():
    """The kernel's half may stop a hidden test's loop only at a call that raised or tripped;
    a notebook that patches it to answer the first case alone must not pass the others."""
    cases = [((n,), {}) for n in range(3)]
    done = {"returned": 5, "args": [None], "kwargs": {}}
    with pytest.raises(checks.GradingError, match="answered 1 of the 3 calls of output_size"):
        _replying(done).calls("output_size", "output_size", cases)
    stopped = _replying(done, {"raised": ["ValueError", "no"]}).calls("output_size", "output_size", cases)
    assert stopped[0] == (5, None) and isinstance(stopped[1], ValueError)
    assert len(_replying(done, done, done).calls("output_size", "output_size", cases)) == 3


def test_names_the_assignments_cells_bind_are_never_read_from_the_notebook():
    """A test that runs before the read-only cell drawing its data (cells moved) must not take
    the notebook's data instead: a name an assignment cell binds is not looked up in the kernel."""
    from grader import plain, scoring

    asked = []

    def ask(request):
        asked.append(request)
        return plain.encode({name: ["value", 0.99] for name in request["names"]})

    own = scoring.bound_names(["hidden_accuracy = None\n_m = build_model()"])
    assert own == {"hidden_accuracy", "_m"}
    out = scoring.TrustedTests(ask, own).test("assert hidden_accuracy >= 0.95", "t")
    assert out and out[0]["ename"] == "NameError" and not asked
    assert scoring.TrustedTests(ask).test("assert hidden_accuracy >= 0.95", "t") == []  # control
