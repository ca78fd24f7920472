"""CSV export of the gradebook, with the status of every submission.

The rows are the gradebook's: every student of the gradebook (graded, failed, on the
roster or handed nothing in) for every assignment of the gradebook; a student removed
from the gradebook disappears.  The status comes from grader/results/<assignment>.json
(the last ``autograde`` run on one submissions folder).

Totals: ``student_id, assignment, score, max_score, status, message, late_penalty,
hours_late, submitted_at, due``.  status is ``graded``, ``failed`` (a failed submission
has an empty score and says why, so it never looks like an honest zero) or ``missing``
(no submission, or no result of ``autograde`` for it).  score is after the late
penalty.  ``--by-test``: one row per graded cell: ``student_id, assignment, notebook,
grade_id, score, max_score, message`` where message is why a test lost points (the
``ErrorName: message`` its cell raised).  ``canvas``: Canvas's gradebook import format.
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

from . import course
from .autograde import load_results

TOTALS = ["student_id", "assignment", "score", "max_score", "status", "message",
          "late_penalty", "hours_late", "submitted_at", "due"]
BY_TEST = ["student_id", "assignment", "notebook", "grade_id", "score", "max_score", "message"]
CANVAS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MAX_NOTEBOOK = 64 * 1024**2  # an autograded notebook larger than this is not read for messages


class NotFound(Exception):
    """An assignment asked for that the gradebook does not have."""


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


def _test_messages(student: str, assignment: str, notebook: str) -> dict[str, str]:
    """grade id -> why that cell lost points, read from the autograded notebook's outputs
    (``ErrorName: message``, or what it wrote to the error stream).  The file is only read
    if it is a regular file, not a link, and not too large."""
    path = course.COURSE / "autograded" / student / assignment / f"{notebook}.ipynb"
    try:
        info = os.lstat(path)
    except OSError:
        return {}
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_NOTEBOOK:
        return {}
    for parent in (path.parent, path.parent.parent):
        if parent.is_symlink():
            return {}
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    out = {}
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if not gid or not meta.get("grade"):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out[gid] = _short(f"{o.get('ename', 'Error')}: {o.get('evalue', '')}")
                break
            if o.get("output_type") == "stream" and o.get("name") == "stderr" and gid not in out:
                text = o.get("text", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                out[gid] = _short("wrote to the error stream: " + text.strip())
    return out


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status(info: dict | None, sub) -> tuple[str, str]:
    """(status, message) of one student's submission."""
    if info and info.get("status") == "failed":
        return "failed", info.get("message") or "could not be graded"
    if info and info.get("status") == "graded":
        if sub is None:
            return "missing", "graded, but the gradebook has no grades for it: grade it again"
        return "graded", info.get("message", "")
    if sub is not None:
        return "missing", ("no result of `python -m grader autograde` for this submission "
                           "(graded elsewhere, or from another submissions folder): grade it again")
    return "missing", "no submission"


def check_assignments(assignments: list[str] | None) -> None:
    """Raise NotFound naming each assignment the gradebook does not have, and those it has."""
    if not assignments:
        return
    have = gradebook_assignments()
    unknown = [a for a in assignments if a not in have]
    if unknown:
        there = "there is" if len(have) == 1 else "there are"
        raise NotFound(f"no assignment {', '.join(map(repr, unknown))} in the gradebook "
                       f"({there}: {', '.join(have) or 'none; release one first'})")


def gradebook_assignments() -> list[str]:
    from nbgrader.api import Gradebook

    cfg = course.load_config()
    if not course.db_path(cfg).exists():
        return []
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        return sorted(a.name for a in gb.assignments)


def rows(assignments: list[str] | None = None):
    """Yield (assignment, max_score, student, status, message, submission) for every
    student of the gradebook and every (chosen) assignment, with the gradebook open."""
    from nbgrader.api import Gradebook, MissingEntry

    check_assignments(assignments)
    cfg = course.load_config()
    if not course.db_path(cfg).exists():
        return
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        students = sorted(s.id for s in gb.students)
        for name in sorted(assignments or [a.name for a in gb.assignments]):
            assignment = gb.find_assignment(name)
            results = load_results(name)
            for student in students:
                try:
                    sub = gb.find_submission(name, student)
                except MissingEntry:
                    sub = None
                status, message = _status(results.get(student), sub)
                yield assignment, student, status, message, sub


def export(by_test: bool = False, assignments: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BY_TEST if by_test else TOTALS)
    for assignment, student, status, message, sub in rows(assignments):
        name, max_score = assignment.name, assignment.max_score
        due = collect_show(assignment.duedate)
        if by_test:
            if status != "graded":
                continue
            for nb in sorted(sub.notebooks, key=lambda n: n.name):
                why = _test_messages(student, name, nb.name)
                for grade in sorted(nb.grades, key=lambda g: g.name):
                    note = ""
                    if grade.needs_manual_grade and grade.manual_score is None:
                        note = "to grade by hand"
                    elif grade.needs_manual_grade:
                        note = "graded by hand, to review after re-grading"
                    elif (grade.score or 0) < (grade.max_score or 0):
                        note = why.get(grade.name, "")
                    writer.writerow([student, name, nb.name, grade.name,
                                     _fmt(grade.score), _fmt(grade.max_score), note])
            continue
        late = ["", "", "", due]
        if status == "graded" and sub.timestamp is not None:
            seconds = sub.total_seconds_late or 0
            late[1] = f"{seconds / 3600:.1f}" if seconds > 0 else "0"
            late[2] = collect_show(sub.timestamp)
        if status == "graded":
            penalty = sub.late_submission_penalty or 0
            late[0] = _fmt(penalty) if sub.timestamp is not None or penalty else ""
            if sub.needs_manual_grade:
                message = "; ".join(m for m in [_manual_note(sub), message] if m)
            if penalty:
                message = "; ".join(m for m in [message, f"late by {late[1]} h: "
                                                f"{_fmt(penalty)} points off"] if m)
            writer.writerow([student, name, _fmt(sub.score - penalty), _fmt(max_score), status,
                             message, *late])
        else:
            writer.writerow([student, name, "", _fmt(max_score), status, message, *late])
    return out.getvalue()


def collect_show(when) -> str:
    from .due import show_when

    return show_when(when)


def export_canvas(roster: Path, assignments: list[str] | None = None) -> tuple[str, list[str]]:
    """Canvas's gradebook import CSV: ``Student, ID, SIS User ID, SIS Login ID, Section``
    and a column per assignment (its score after the late penalty; empty unless graded),
    one row per roster student, the points possible in the second row.  Returns the CSV
    and the gradebook students that are not on the roster (they cannot be imported)."""
    from .roster import read_roster

    roster_rows = read_roster(roster)
    scores: dict[tuple[str, str], str] = {}
    maxima: dict[str, str] = {}
    students = set()
    for assignment, student, status, _message, sub in rows(assignments):
        maxima[assignment.name] = _fmt(assignment.max_score)
        students.add(student)
        if status == "graded":
            scores[(student, assignment.name)] = _fmt(sub.score - (sub.late_submission_penalty or 0))
    names = sorted(maxima) if not assignments else sorted(assignments)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CANVAS + names)
    writer.writerow(["Points Possible", "", "", "", ""] + [maxima.get(n, "") for n in names])
    for s in roster_rows:
        writer.writerow([_sortable(s.name), s.canvas_id, s.sis_user_id, s.sis_login_id, s.section]
                        + [scores.get((s.id, n), "") for n in names])
    on_roster = {s.id for s in roster_rows}
    return out.getvalue(), sorted(students - on_roster)


def _sortable(name: str) -> str:
    """``Last, First`` as Canvas shows students."""
    name = " ".join(name.split())
    if "," in name or " " not in name:
        return name
    first, _, last = name.rpartition(" ")
    return f"{last}, {first}"
