"""Autograde a class, in parallel, without sharing a gradebook between processes.

The parent process (this module):

1. checks every submission's notebooks (valid JSON, a notebook, the grading
   metadata and cells intact); a broken one is recorded as ``failed`` with the
   reason and never reaches nbgrader;
2. snapshots the gradebook into a template, then starts ``workers`` worker
   processes (``python -m grader.worker``); each grades one student at a time
   with nbgrader's own ``Autograde`` into a private course folder (a copy of the
   template gradebook, a scratch ``autograded/`` copy), the student's kernel
   running in the sandbox;
3. merges each finished student into the main gradebook and moves the
   autograded notebook into ``grader/autograded/`` - the parent is the only
   writer of the main gradebook;
4. kills a worker that exceeds the hard limit for one submission (its student is
   ``failed``, the worker is replaced) - one student never stops the others;
5. writes the status of every submission to ``grader/results/<assignment>.json``,
   which ``export`` reads.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import queue
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course

UID_BASE = 61000


# ---------------------------------------------------------------- the results file
def results_path(assignment: str) -> Path:
    return course.RESULTS / f"{assignment}.json"


def load_results(assignment: str) -> dict:
    path = results_path(assignment)
    if path.exists():
        return json.loads(path.read_text())
    return {}


def save_results(assignment: str, results: dict) -> None:
    path = results_path(assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    os.replace(tmp, path)


# ---------------------------------------------------------------- checking a submission
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


def inspect_submission(folder: Path, expected: dict[str, dict[str, str]]) -> str | None:
    """Why this submission cannot be graded, or None if it can."""
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


# ---------------------------------------------------------------- the main gradebook
def snapshot_db(src: Path, dest: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)


def merge_submission(cfg, worker_db: Path, assignment: str, student: str) -> None:
    """Copy one student's autograde results from a worker's gradebook into the main one."""
    from nbgrader.api import Gradebook

    course_id = cfg.CourseDirectory.course_id
    with Gradebook("sqlite:///" + str(worker_db), course_id) as src, \
            Gradebook(cfg.CourseDirectory.db_url, course_id) as dst:
        sub = src.find_submission(assignment, student)
        dst.update_or_create_student(student)
        kwargs = {"timestamp": sub.timestamp} if sub.timestamp else {}
        dst.update_or_create_submission(assignment, student, **kwargs)
        for nb in sub.notebooks:
            dnb = dst.find_submission_notebook(nb.name, assignment, student)
            dnb.flagged = nb.flagged
            dnb.late_submission_penalty = nb.late_submission_penalty
            for grade in nb.grades:
                dg = dst.find_grade(grade.name, nb.name, assignment, student)
                dg.auto_score = grade.auto_score
                dg.needs_manual_grade = grade.needs_manual_grade
            for comment in nb.comments:
                dc = dst.find_comment(comment.name, nb.name, assignment, student)
                dc.auto_comment = comment.auto_comment
        dst.db.commit()


# ---------------------------------------------------------------- workers
@dataclass
class Job:
    student: str
    started: float = 0.0


@dataclass
class Worker:
    slot: int
    run_dir: Path
    settings: dict
    proc: subprocess.Popen | None = None
    job: Job | None = None
    log: Path | None = None

    def start(self) -> None:
        self.log = self.run_dir / f"worker-{self.slot}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(course.REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.worker", "--slot", str(self.slot),
             "--uid", str(UID_BASE + self.slot), "--run-dir", str(self.run_dir),
             "--settings", json.dumps(self.settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"),
            text=True, bufsize=1, start_new_session=True, cwd=str(self.run_dir), env=env)

    def send(self, student: str) -> None:
        self.job = Job(student, time.monotonic())
        self.proc.stdin.write(json.dumps({"student": student}) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.kill()


@dataclass
class Summary:
    assignment: str
    graded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        n = len(self.graded) + len(self.failed)
        rate = 60 * n / self.seconds if self.seconds else 0.0
        text = (f"{self.assignment}: {n} submissions, {len(self.graded)} graded, "
                f"{len(self.failed)} failed in {self.seconds:.1f} s ({rate:.1f} submissions/min)")
        if self.failed:
            text += "; failed: " + ", ".join(sorted(self.failed))
        return text


def autograde(assignment: str, submissions: Path | None = None, workers: int | None = None,
              settings: dict | None = None, students: list[str] | None = None,
              progress: bool = True, hard_limit: float | None = None) -> Summary:
    """Grade every ``submissions/<student>/<assignment>/`` (default grader/submitted)."""
    from tqdm import tqdm

    settings = dict(settings or {})
    cfg = course.load_config(course.overrides(settings))
    submissions = Path(submissions or course.COURSE / "submitted").resolve()
    workers = max(1, workers or os.cpu_count() or 1)
    start = time.monotonic()
    summary = Summary(assignment)

    _ensure_released(cfg, assignment)
    expected = expected_cells(cfg, assignment)
    all_students = sorted(p.name for p in submissions.iterdir()
                          if p.is_dir() and not p.name.startswith(".")) if submissions.is_dir() else []
    if students:
        all_students = [s for s in all_students if s in students]
    results = load_results(assignment)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    todo = []
    for student in all_students:
        reason = inspect_submission(submissions / student / assignment, expected)
        if reason:
            summary.failed[student] = reason
            results[student] = {"status": "failed", "message": reason, "notes": [], "graded_at": now}
            _forget_autograded(assignment, student)
        else:
            todo.append(student)

    course.WORK.mkdir(parents=True, exist_ok=True)
    run_dir = Path(course.WORK / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    run_dir.mkdir(parents=True)
    template = run_dir / "template.db"
    snapshot_db(course.db_path(cfg), template)
    per_nb = float(cfg.SandboxedExecute.get("notebook_budget", 300))
    limit = hard_limit or (per_nb * max(1, len(expected)) + 120)
    settings.update(assignment=assignment, submissions=str(submissions), template=str(template))

    bar = tqdm(total=len(all_students), initial=len(summary.failed), unit="submission",
               desc=assignment, disable=not progress, file=sys.stderr)
    pool = [Worker(i, run_dir, settings) for i in range(min(workers, max(1, len(todo))))]
    pending = list(todo)
    try:
        if todo:
            for w in pool:
                w.start()
            busy = {}
            while pending or busy:
                for w in pool:
                    if w.job is None and pending:
                        student = pending.pop(0)
                        try:
                            w.send(student)
                        except OSError:  # the worker is gone: replace it and try again
                            w.kill()
                            w.start()
                            w.send(student)
                        busy[w.slot] = w
                readable = [w.proc.stdout for w in busy.values()]
                ready, _, _ = select.select(readable, [], [], 1.0)
                for w in list(busy.values()):
                    line = None
                    if w.proc.stdout in ready:
                        line = w.proc.stdout.readline()
                        if not line:  # the worker died
                            line = json.dumps({"student": w.job.student, "ok": False,
                                               "message": f"the grading process crashed (see {w.log})"})
                    elif time.monotonic() - w.job.started > limit:
                        line = json.dumps({"student": w.job.student, "ok": False,
                                           "message": f"grading took longer than {limit:.0f} s and "
                                                      f"was stopped"})
                        w.kill()
                    if line is None:
                        continue
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        reply = {"ok": False, "message": f"the grading process answered {line[:200]!r}"}
                    student = w.job.student
                    w.job = None
                    del busy[w.slot]
                    if not reply.get("ok") and "student" not in reply:  # crashed or killed
                        w.kill()
                        w.start()
                    _record(cfg, assignment, student, reply, results, summary, now)
                    save_results(assignment, results)
                    bar.update(1)
    finally:
        for w in pool:
            w.stop()
        bar.close()
        save_results(assignment, results)
        if not settings.get("keep_work"):
            shutil.rmtree(run_dir, ignore_errors=True)
    summary.seconds = time.monotonic() - start
    return summary


def _record(cfg, assignment, student, reply, results, summary, now) -> None:
    if reply.get("ok"):
        try:
            merge_submission(cfg, Path(reply["db"]), assignment, student)
            dest = course.COURSE / "autograded" / student / assignment
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(reply["autograded"], dest)
        except Exception as exc:
            reply = {"ok": False, "message": f"could not record the grades: {type(exc).__name__}: {exc}"}
    if reply.get("ok"):
        summary.graded.append(student)
        results[student] = {"status": "graded", "message": "; ".join(reply.get("notes", [])),
                            "notes": reply.get("notes", []), "graded_at": now,
                            "seconds": reply.get("seconds")}
    else:
        summary.failed[student] = reply.get("message", "unknown error")
        results[student] = {"status": "failed", "message": reply.get("message", "unknown error"),
                            "notes": [], "graded_at": now}
        _forget_autograded(assignment, student)
    if "db" in reply:
        shutil.rmtree(Path(reply["db"]).parent, ignore_errors=True)


def _forget_autograded(assignment: str, student: str) -> None:
    """A submission that failed leaves no stale autograded copy behind."""
    stale = course.COURSE / "autograded" / student / assignment
    if stale.exists():
        shutil.rmtree(stale, ignore_errors=True)


def _ensure_released(cfg, assignment: str) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    db = course.db_path(cfg)
    if db.exists():
        with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
            try:
                gb.find_assignment(assignment)
                return
            except MissingEntry:
                pass
    print(f"{assignment} was never released; releasing it first", file=sys.stderr)
    result = course.api(cfg).generate_assignment(assignment)
    if not result["success"]:
        raise SystemExit(f"cannot release {assignment}:\n{result.get('log', '')}{result.get('error', '')}")
