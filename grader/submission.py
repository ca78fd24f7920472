"""What a submission must be before it is graded: a folder of regular files within the budget
(no links, no special files), holding the assignment's notebooks as valid JSON with their
grading metadata and every graded cell. A submission that is not is recorded ``failed`` with
the reason, and never reaches nbgrader."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nbformat


def expected_cells(cfg, assignment: str) -> dict[str, dict[str, str]]:
    """notebook name -> {cell id: 'grade' | 'solution'} from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        a = gb.find_assignment(assignment)
        out = {}
        for nb in a.notebooks:
            cells = {c.name: "solution" for c in nb.solution_cells}
            cells.update({c.name: "grade" for c in nb.grade_cells})
            out[nb.name] = cells
        return out


LINK_RULE = ("a submission may hold only regular files and folders: no symbolic or hard links, "
             "pipes or devices (submit the files themselves)")


def inspect_links(folder: Path) -> str | None:
    """Why ``folder`` (``<submissions>/<student>/<assignment>``) may not be copied at all: a
    link (the student folder, the assignment folder or anything inside), a special file,
    or more than the budget.  Nothing has been read or copied from it yet."""
    from .crossing import SUBMISSION_BUDGET, check_tree

    student = folder.parent
    for path, label in ((student, student.name), (folder, f"{student.name}/{folder.name}")):
        try:
            st = os.lstat(path)
        except OSError:
            return None  # missing: inspect_submission says so
        if stat.S_ISLNK(st.st_mode):
            return f"{label} is a symbolic link; {LINK_RULE}"
    problem = check_tree(folder, SUBMISSION_BUDGET, label=folder.name)
    if problem is None:
        return None
    if "larger than" in problem or "more than" in problem:
        return f"{problem}; a submission may hold {SUBMISSION_BUDGET.describe()}"
    return f"{problem}; {LINK_RULE}"


def inspect_submission(folder: Path, expected: dict[str, dict[str, str]]) -> str | None:
    """Why this submission cannot be graded, or None if it can."""
    refused = inspect_links(folder)
    if refused:
        return refused
    if not folder.is_dir():
        return f"no folder {folder.name}/ in the submission"
    found = sorted(p.name for p in folder.glob("*.ipynb"))
    for name, cells in expected.items():
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            return (f"{name}.ipynb is missing from the submission"
                    + (f" (found: {', '.join(found)})" if found else " (no notebook found)"))
        raw = path.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return f"{name}.ipynb is not valid JSON ({exc}); the file may be truncated or not a notebook"
        if not isinstance(data, dict) or "cells" not in data or not isinstance(data.get("cells"), list):
            return f"{name}.ipynb is JSON but not a notebook (it has no list of cells)"
        try:
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        except Exception as exc:
            return f"{name}.ipynb is not a readable notebook ({type(exc).__name__}: {exc})"
        present = {}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader")
            if isinstance(meta, dict) and "grade_id" in meta:
                present[meta["grade_id"]] = meta
        if not present:
            return (f"{name}.ipynb has lost its grading metadata (no cell carries nbgrader metadata); "
                    "it must be the notebook that was handed out, edited in place")
        missing = sorted(cid for cid in cells if cid not in present)
        if missing:
            return (f"{name}.ipynb is missing cells (or their grading metadata): {', '.join(missing)}; "
                    "do not delete or recreate cells of the assignment")
    return None
