"""CSV export of the gradebook, with the status of every submission.

Totals: ``student_id, assignment, score, max_score, status, message`` where
status is ``graded`` or ``failed`` (a failed submission has an empty score and
says why, so it never looks like an honest zero).  ``--by-test``: one row per
graded cell: ``student_id, assignment, notebook, grade_id, score, max_score``.
"""
from __future__ import annotations

import csv
import io

from . import course
from .autograde import load_results


def _fmt(x) -> str:
    if x is None:
        return ""
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def _manual_note(sub) -> str:
    """Which cells wait for a grade by hand (nbgrader flags a cell already graded by hand
    again when the submission is autograded again: its hand grade stays, to be reviewed)."""
    todo, review = [], []
    for nb in sorted(sub.notebooks, key=lambda n: n.name):
        for grade in sorted(nb.grades, key=lambda g: g.name):
            if grade.needs_manual_grade:
                (todo if grade.manual_score is None else review).append(grade.name)
    notes = []
    if todo:
        notes.append("to grade by hand: " + ", ".join(todo))
    if review:
        notes.append("graded by hand, to review after re-grading: " + ", ".join(review))
    return "; ".join(notes)


def export(by_test: bool = False, assignments: list[str] | None = None) -> str:
    from nbgrader.api import Gradebook, MissingEntry

    cfg = course.load_config()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if by_test:
        writer.writerow(["student_id", "assignment", "notebook", "grade_id", "score", "max_score"])
    else:
        writer.writerow(["student_id", "assignment", "score", "max_score", "status", "message"])
    if not course.db_path(cfg).exists():
        return out.getvalue()
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        names = assignments or [a.name for a in gb.assignments]
        for name in sorted(names):
            try:
                assignment = gb.find_assignment(name)
            except MissingEntry:
                continue
            results = load_results(name)
            max_score = assignment.max_score
            students = sorted(set(results) | {s.student.id for s in assignment.submissions})
            for student in students:
                info = results.get(student, {"status": "graded", "message": ""})
                try:
                    sub = gb.find_submission(name, student)
                except MissingEntry:
                    sub = None
                if by_test:
                    if info["status"] != "graded" or sub is None:
                        continue
                    for nb in sorted(sub.notebooks, key=lambda n: n.name):
                        for grade in sorted(nb.grades, key=lambda g: g.name):
                            writer.writerow([student, name, nb.name, grade.name,
                                             _fmt(grade.score), _fmt(grade.max_score)])
                    continue
                if info["status"] == "graded" and sub is not None:
                    message = info.get("message", "")
                    if sub.needs_manual_grade:
                        message = "; ".join(m for m in [_manual_note(sub), message] if m)
                    writer.writerow([student, name, _fmt(sub.score), _fmt(max_score), "graded", message])
                else:
                    writer.writerow([student, name, "", _fmt(max_score), "failed",
                                     info.get("message") or "no autograded result"])
    return out.getvalue()
