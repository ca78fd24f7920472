"""What the parent of ``grader.autograde`` takes from a worker's reply, and nothing more.

A worker grades one student and answers on a pipe of its own with one JSON line: the grades,
the scratch folder it graded in, what the sandbox swept away.  A reply is taken only if it
carries the job's random token, student and assignment (``parse_reply``); a path in it is used
only if it is one of that worker's own scratch folders (``job_folder``); from there only regular
files with one link, within ``grader.crossing.SCRATCH_BUDGET``, are copied into
``grader/autograded/`` (``_bring_back``); and the parent alone writes the grades into the main
gradebook (``merge_grades``, called by ``record``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import course


@dataclass
class Job:
    """One student sent to a worker; its reply must echo ``token``."""
    student: str
    started: float = 0.0
    token: str = field(default_factory=lambda: secrets.token_hex(16))


def merge_grades(gb, assignment: str, student: str, grades: dict) -> None:
    """Write one student's autograde results (as sent by a worker) into gradebook ``gb``."""
    gb.update_or_create_student(student)
    kwargs = {}
    if grades.get("timestamp"):
        kwargs["timestamp"] = dt.datetime.fromisoformat(grades["timestamp"])
    try:
        gb.update_or_create_submission(assignment, student, **kwargs)
        for nb in grades["notebooks"]:
            dnb = gb.find_submission_notebook(nb["name"], assignment, student)
            dnb.flagged = nb["flagged"]
            dnb.late_submission_penalty = nb["late_submission_penalty"]
            by_name = {g.name: g for g in dnb.grades}
            for name, score, manual in nb["grades"]:
                grade = by_name.get(name) or gb.find_grade(name, nb["name"], assignment, student)
                grade.auto_score = score
                grade.needs_manual_grade = manual
            comments = {c.name: c for c in dnb.comments}
            for name, text in nb["comments"]:
                comment = comments.get(name) or gb.find_comment(name, nb["name"], assignment, student)
                comment.auto_comment = text
        gb.db.commit()
    except BaseException:
        gb.db.rollback()
        raise


def parse_reply(line: str, job: Job, assignment: str) -> tuple[dict, bool]:
    """A worker's reply line -> (reply, whether the worker must be replaced).  A reply
    belongs to the job sent: same student, assignment and token, or it is not taken."""
    try:
        reply = json.loads(line)
    except ValueError:
        return {"ok": False, "message": f"the grading process answered {line[:200]!r}"}, True
    if not isinstance(reply, dict) or reply.get("token") != job.token \
            or reply.get("student") != job.student or reply.get("assignment") != assignment:
        return {"ok": False, "message": "the grading process sent a reply that does not belong to "
                                        "this submission; it was replaced: grade it again"}, True
    return reply, False


def job_folder(path, home: Path | None) -> Path | None:
    """``path`` (named in a worker's reply) if it is one of that worker's scratch folders, a
    real folder ``<home>/k<n>`` with no link on the way; else None.  Nothing outside it is
    ever copied, moved or deleted because a reply names it."""
    if home is None or not isinstance(path, str):
        return None
    p = Path(path)
    if not p.is_absolute() or p.parent != home or not re.fullmatch(r"k\d+", p.name):
        return None
    for q in (home, p):
        try:
            if not stat.S_ISDIR(os.lstat(q).st_mode):
                return None
        except OSError:
            return None
    if os.path.realpath(p) != os.path.join(os.path.realpath(home), p.name):
        return None
    return p


def _bring_back(scratch: Path, assignment: str, student: str) -> list[tuple[str, str]]:
    """Copy the graded folder ``<scratch>/<student>/<assignment>`` into grader/autograded/:
    only regular files with one link, within the budget (grader.crossing.copy_checked).
    Returns what was refused."""
    from .crossing import SCRATCH_BUDGET, copy_checked

    src = scratch
    for part in (student, assignment):
        src = src / part
        if not stat.S_ISDIR(os.lstat(src).st_mode):  # a link: never followed
            raise ValueError(f"{src.relative_to(scratch)} is not a folder")
    dest = course.COURSE / "autograded" / student / assignment
    dest.parent.mkdir(parents=True, exist_ok=True)
    incoming = dest.parent / f".{assignment}.incoming"
    if incoming.exists():
        shutil.rmtree(incoming)
    refused = copy_checked(src, incoming, SCRATCH_BUDGET)
    if dest.exists():
        shutil.rmtree(dest)
    os.rename(incoming, dest)
    return refused


def _describe_left(items: list[tuple[str, str]], show: int = 3) -> str:
    """'2 symbolic links: a, b; 12 files over the budget: c, d, e and 9 more'."""
    groups: dict[str, list[str]] = {}
    for rel, why in items:
        groups.setdefault(why, []).append(rel)
    parts = []
    for why, names in groups.items():
        names = [n for n in names if n]
        shown = ", ".join(names[:show]) + (f" and {len(names) - show} more" if len(names) > show else "")
        if why.startswith("a "):
            label = why if len(names) == 1 else f"{len(names)} {why[2:]}s"
        else:
            label = f"{len(names)} file{'s' if len(names) != 1 else ''} {why}" if names else why
        parts.append(f"{label}: {shown}" if shown else label)
    return "; ".join(parts)


def record(gradebook, assignment, student, reply, results, summary, now, home=None) -> None:
    from .crossing import SCRATCH_BUDGET

    scratch = job_folder(reply.get("scratch"), home)
    notes = list(reply.get("notes", []))
    if reply.get("ok"):
        try:
            if scratch is None:
                raise ValueError(f"the reply names no scratch folder of its own: {reply.get('scratch')!r}")
            merge_grades(gradebook, assignment, student, reply["grades"])
            left = [tuple(item) for item in reply.get("removed", [])]
            left += _bring_back(scratch, assignment, student)
            if left:
                notes.append("not kept from the grading folder (only regular files, "
                             f"{SCRATCH_BUDGET.describe()}, come back): {_describe_left(left)}")
        except Exception as exc:
            reply = {"ok": False, "message": f"could not record the grades: {type(exc).__name__}: {exc}"}
    if reply.get("ok"):
        summary.graded.append(student)
        results[student] = {"status": "graded", "message": "; ".join(notes),
                            "notes": notes, "graded_at": now,
                            "seconds": reply.get("seconds")}
    else:
        summary.failed[student] = reply.get("message", "unknown error")
        results[student] = {"status": "failed", "message": reply.get("message", "unknown error"),
                            "notes": [], "graded_at": now}
        forget_autograded(assignment, student)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def forget_autograded(assignment: str, student: str) -> None:
    """A submission that failed leaves no stale autograded copy behind."""
    stale = course.COURSE / "autograded" / student / assignment
    if stale.exists():
        shutil.rmtree(stale, ignore_errors=True)
