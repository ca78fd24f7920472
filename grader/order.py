"""Put the assignment's cells back in the order the assignment gave them, before grading.

nbgrader restores the content of every test and read-only cell (OverwriteCells), not where it
sits, and a notebook runs from top to bottom: a test dragged above the cell that draws its data
would run before it. Run after OverwriteCells, this puts the cells that carry a grade id back in
the source notebook's order. A cell the student added travels with the assignment cell above it
(its solution cell, usually), so a helper written under a solution still runs before the tests.
"""
from __future__ import annotations

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from . import scoring


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class RestoreOrder(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        source = nbformat.read(scoring.source_notebook(resources), as_version=4)
        rank = {gid: i for i, gid in enumerate(_grade_id(c) for c in source.cells) if gid}
        head, groups = [], []
        for cell in nb.cells:
            if _grade_id(cell) in rank:
                groups.append((rank[_grade_id(cell)], [cell]))
            elif groups:
                groups[-1][1].append(cell)
            else:
                head.append(cell)
        groups.sort(key=lambda group: group[0])
        nb.cells = head + [cell for _, cells in groups for cell in cells]
        return nb, resources
