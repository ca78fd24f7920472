"""python -m grader check NOTEBOOK: a student's self-check before submitting.

Runs the notebook top to bottom in a fresh kernel (in a temporary copy of its
folder), then prints one line per test cell: passed, failed with the message,
or hidden (run only at grading time), with the points at stake.  Exit status 0
only if every visible test passed.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from traitlets.config import Config


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def _pts(x) -> str:
    x = float(x)
    x = int(x) if x.is_integer() else x
    return f"{x} pt" + ("" if x == 1 else "s")


def check(path: Path, timeout: int = 60, sandbox: str = "none", out=sys.stdout) -> int:
    from .execute import SandboxedExecute

    path = Path(path)
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        print(f"{path}: cannot read this notebook ({exc})", file=out)
        return 2
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    if not any("nbgrader" in c.metadata for c in nb.cells):
        print(f"{path}: this notebook has lost its grading metadata; it cannot be graded. Start "
              "again from the released notebook and paste your code into its cells.", file=out)
        return 2
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    print(f"{path.name}: running {code_cells} code cells (at most {timeout} s each)...", file=out,
          flush=True)
    with tempfile.TemporaryDirectory(prefix="grader-check-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".git"))
        cfg = Config()
        cfg.SandboxedExecute.timeout = timeout
        cfg.SandboxedExecute.notebook_budget = timeout * max(1, code_cells)
        cfg.SandboxKernelManager.sandbox = sandbox
        cfg.SandboxKernelManager.runtime_root = tmp
        cfg.SandboxKernelManager.switch_user = False  # the student's own code, on their machine
        SandboxedExecute(config=cfg).preprocess(nb, {"metadata": {"path": str(work)}})

    visible_pts = passed_pts = hidden_pts = manual_pts = 0.0
    n_visible = n_passed = 0
    width = max((len(c.metadata["nbgrader"].get("grade_id", "")) for c in tests), default=10)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id", "?")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not meta.get("grade"):
            if meta.get("solution") and errors:
                e = errors[0]
                print(f"  note  {gid:<{width}}  this cell raised {e.get('ename')}: "
                      f"{str(e.get('evalue', ''))[:200]}", file=out)
            continue
        points = float(meta.get("points", 0))
        if meta.get("solution"):  # a written answer
            manual_pts += points
            print(f"  ----  {gid:<{width}}  {_pts(points):>7}  graded by hand", file=out)
            continue
        if not _has_code(cell.source):
            hidden_pts += points
            print(f"  ----  {gid:<{width}}  {_pts(points):>7}  hidden tests: run when your work "
                  "is graded", file=out)
            continue
        n_visible += 1
        visible_pts += points
        stderr = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                  and o.get("name") == "stderr"]
        if errors or stderr:
            if errors:
                why = f"{errors[0].get('ename')}: {errors[0].get('evalue', '')}"
            else:
                why = "the test printed to stderr (a warning?): " + stderr[0].get("text", "")[:200]
            print(f"  FAIL  {gid:<{width}}  {_pts(points):>7}  {why[:500]}", file=out)
        else:
            n_passed += 1
            passed_pts += points
            print(f"  pass  {gid:<{width}}  {_pts(points):>7}", file=out)
    extra = []
    if hidden_pts:
        extra.append(f"{_pts(hidden_pts)} more in hidden tests")
    if manual_pts:
        extra.append(f"{_pts(manual_pts)} graded by hand")
    print(f"visible tests: {n_passed} of {n_visible} passed ({passed_pts:g} of {_pts(visible_pts)})"
          + (f"; {', '.join(extra)}" if extra else ""), file=out)
    return 0 if n_passed == n_visible else 1
