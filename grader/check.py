"""python -m grader check NOTEBOOK: a student's self-check before submitting.

Runs the notebook the way grading does: the same time, memory and output limits (read from
grader/nbgrader_config.py, the one place they are set), the sandbox when bubblewrap is
there, the student's cells in a fresh kernel (in a temporary copy of the notebook's folder)
and the test cells on the other side of the boundary (grader.scoring): those of the course's
released notebook when this machine has one (grader/release/), else the notebook's own.  Then
one line per test cell: passed, failed with the message, edited (grading restores the
original, so the edited cell is not run), or hidden (run only at grading time); a cell whose
visible checks pass but that also holds hidden checks is "part", never "pass".  Exit status 0
only if every visible test passed and no test cell was edited.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

HIDDEN_NOTE = "hidden test"  # a test cell with hidden checks says so in a comment (AUTHORING.md)


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def _has_hidden(source: str) -> bool:
    return any(line.strip().startswith("#") and HIDDEN_NOTE in line.lower() for line in source.splitlines())


def _pts(x) -> str:
    x = float(x)
    x = int(x) if x.is_integer() else x
    return f"{x} pt" + ("" if x == 1 else "s")


def _edited(cell) -> bool:
    """nbgrader's own test: the cell's checksum differs from the one recorded at release."""
    from nbgrader.utils import compute_checksum

    meta = cell.metadata.get("nbgrader", {})
    return "checksum" in meta and compute_checksum(cell) != meta["checksum"]


def released_copy(path: Path) -> Path | None:
    """The course's released notebook of the same name, if this machine has one: the test and
    read-only cells run outside the sandbox then come from it, never from the notebook checked
    (which may be a student's, edited to run code on the checking machine)."""
    from . import course

    found = sorted((course.COURSE / "release").glob(f"*/{Path(path).name}"))
    return found[0] if found else None


def _free_uid() -> int:
    """A user id for the kernel with no process running: one of this process's block of the
    grading ids (grader/autograde.py), so that two checks at once do not share one."""
    from .autograde import UIDS_PER_WORKER, uid_block
    from .procs import uid_has_processes

    first = uid_block(1)
    return next((u for u in range(first, first + UIDS_PER_WORKER) if not uid_has_processes(u)), first)


def limits():
    """The grading limits of grader/nbgrader_config.py, as a traitlets Config for check."""
    from . import course

    graded = course.load_config()
    cfg = graded.__class__()
    for section in ("SandboxedExecute", "SandboxKernelManager"):
        cfg[section].merge(graded[section])
    return cfg


def check(path: Path, timeout: int | None = None, sandbox: str = "auto", out=sys.stdout) -> int:
    from .execute import SandboxedExecute
    from .sandbox import bwrap_works

    path = Path(path)
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        print(f"{path}: cannot read this notebook ({exc})", file=out)
        return 2
    if not any("nbgrader" in c.metadata for c in nb.cells):
        print(f"{path}: this notebook has lost its grading metadata; it cannot be graded. Start "
              "again from the released notebook and paste your code into its cells.", file=out)
        return 2
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    edited = {c.metadata["nbgrader"].get("grade_id") for c in tests if _edited(c)}
    for cell in tests:  # an edited test is not run: grading restores and runs the original
        if cell.metadata["nbgrader"].get("grade_id") in edited:
            cell.source = ""
    cfg = limits()
    if timeout:
        cfg.SandboxedExecute.timeout = timeout
    released = released_copy(path)
    if released is None:  # a student's machine: their own notebook's tests, run by themselves
        cfg.SandboxedExecute.trusted_notebook = "-"
    else:  # the course's machine: a submitted notebook's cells never run outside the sandbox
        cfg.SandboxedExecute.trusted_notebook = str(released)
    if sandbox == "auto" and not bwrap_works():  # a student's machine: say it once, quietly
        print("note: bubblewrap is not installed here, so the notebook runs without the sandbox "
              "(grading uses it)", file=out)
        sandbox = "none"
    cfg.SandboxKernelManager.sandbox = sandbox
    cfg.SandboxKernelManager.preload = True
    if os.geteuid() == 0:  # as root (an instructor), the kernel runs as another user, as in grading
        cfg.SandboxKernelManager.uid = _free_uid()
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    print(f"{path.name}: running {code_cells} code cells (at most {cfg.SandboxedExecute.timeout} s "
          f"each, {cfg.SandboxedExecute.notebook_budget} s in all, as when graded)...", file=out,
          flush=True)
    with tempfile.TemporaryDirectory(prefix="grader-check-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(path.parent, work, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".git"))
        cfg.SandboxKernelManager.runtime_root = tmp
        SandboxedExecute(config=cfg).preprocess(nb, {"metadata": {"path": str(work)}})
    return _report(nb, edited, out)


def _report(nb, edited: set, out) -> int:
    visible_pts = passed_pts = hidden_pts = manual_pts = 0.0
    n_visible = n_passed = 0
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
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
        line = f"{gid:<{width}}  {_pts(points):>7}"
        if meta.get("solution"):  # a written answer
            manual_pts += points
            print(f"  ----  {line}  graded by hand", file=out)
        elif gid in edited:
            n_visible += 1
            visible_pts += points
            print(f"  EDIT  {line}  this test cell was edited, so it was not run; grading "
                  "restores and runs the original (undo your change to see its result)", file=out)
        elif not _has_code(cell.source):
            hidden_pts += points
            print(f"  ----  {line}  hidden tests: run when your work is graded", file=out)
        else:
            n_visible += 1
            visible_pts += points
            if errors:
                why = f"{errors[0].get('ename')}: {errors[0].get('evalue', '')}"
                print(f"  FAIL  {line}  {why[:500]}", file=out)
            elif _has_hidden(cell.source):
                n_passed += 1
                print(f"  part  {line}  the visible checks pass; the points also depend on "
                      "hidden checks run when your work is graded", file=out)
            else:
                n_passed += 1
                passed_pts += points
                print(f"  pass  {line}", file=out)
    extra = []
    if hidden_pts:
        extra.append(f"{_pts(hidden_pts)} more in hidden tests")
    if manual_pts:
        extra.append(f"{_pts(manual_pts)} graded by hand")
    print(f"visible tests: {n_passed} of {n_visible} passed ({passed_pts:g} of {_pts(visible_pts)} "
          "certain)" + (f"; {', '.join(extra)}" if extra else ""), file=out)
    return 0 if n_passed == n_visible else 1
