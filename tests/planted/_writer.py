"""Write planted submissions: a released notebook with some cells replaced by a variant's code."""
from __future__ import annotations

from pathlib import Path

import nbformat


def writers(assignment: str, variants: dict[str, dict[str, str]], answer_id: str, answer: str,
            orders: dict[str, list[str]] | None = None):
    """Return ``make(release_notebook, dest, variant) -> path`` and
    ``make_class(release_notebook, submissions, variants=None) -> {student: variant}`` for one
    assignment. A variant maps grade ids to cell sources; non-empty variants also fill the
    written answer ``answer_id`` with ``answer``. ``orders[variant]``: grade ids of cells put, in
    that order, where the first of them stood (a student dragging cells around)."""

    def make(release_notebook: Path, dest: Path, variant: str) -> Path:
        code = variants[variant]
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / f"{assignment}.ipynb"
        nb = nbformat.read(release_notebook, as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in code:
                cell.source = code[gid].strip("\n")
            elif gid == answer_id and code:
                cell.source = answer
        moved = (orders or {}).get(variant)
        if moved:  # the cells, in the order given, where the first of them stood
            ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
            at = min(ids.index(gid) for gid in moved)
            rest = [c for c, gid in zip(nb.cells, ids) if gid not in moved]
            nb.cells = rest[:at] + [nb.cells[ids.index(gid)] for gid in moved] + rest[at:]
        nbformat.write(nb, path)
        return path

    def make_class(release_notebook: Path, submissions: Path, chosen=None) -> dict[str, str]:
        for variant in chosen or variants:
            make(release_notebook, submissions / variant / assignment, variant)
        return {v: v for v in chosen or variants}

    return make, make_class
