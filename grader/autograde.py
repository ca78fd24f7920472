"""Autograde a class, in parallel, without sharing a gradebook between processes.

The parent process (this module):

1. checks every submission's notebooks (valid JSON, a notebook, the grading
   metadata and cells intact); a broken one is recorded as ``failed`` with the
   reason and never reaches nbgrader;
2. snapshots the gradebook into a template, then starts ``workers`` worker
   processes (``python -m grader.worker``); each grades one student at a time
   with nbgrader's own ``Autograde`` into a private course folder (its own copy
   of the template gradebook, a scratch ``autograded/`` copy per student), the
   student's kernel running in the sandbox; a worker starts the next student's
   kernel while it grades the current one (grader/pool.py);
3. sends a free worker its next student at once, then merges the finished
   student's grades (which the worker sends back) into the main gradebook and
   moves the autograded notebook into ``grader/autograded/`` - the parent is
   the only writer of the main gradebook;
4. kills a worker that exceeds the hard limit for one submission (its student is
   ``failed``, the worker is replaced) - one student never stops the others;
5. writes the status of every submission to ``grader/results/<assignment>.json``,
   which ``export`` reads.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import speedups

speedups.skip_format_grammars()  # before nbformat imports jsonschema

import nbformat  # noqa: E402

from . import course  # noqa: E402

UID_BASE = 61000
UIDS_PER_WORKER = 8  # kernels of one worker rotate through these user ids (grader/pool.py)


def uid_block(workers: int) -> int:
    """First user id of this run's kernels: a block of ``UIDS_PER_WORKER`` ids per worker.

    Two runs on one machine (an instructor's and a test suite's) should not share user
    ids, since the process limit is per user id: the block depends on the process id
    (64 blocks between 61000 and 65095), and the pool skips an id that still has
    processes anyway."""
    size = max(1, workers) * UIDS_PER_WORKER
    blocks = max(1, (65096 - UID_BASE) // size)
    return UID_BASE + (os.getpid() % blocks) * size


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
    first_uid: int = UID_BASE
    proc: subprocess.Popen | None = None
    job: Job | None = None
    log: Path | None = None

    def start(self) -> None:
        self.log = self.run_dir / f"worker-{self.slot}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(course.REPO) + os.pathsep + env.get("PYTHONPATH", "")
        first = self.first_uid + self.slot * UIDS_PER_WORKER
        uids = ",".join(str(first + i) for i in range(UIDS_PER_WORKER))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.worker", "--slot", str(self.slot),
             "--uids", uids, "--run-dir", str(self.run_dir),
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
    _precompile()
    expected = expected_cells(cfg, assignment)
    all_students = sorted(p.name for p in submissions.iterdir()
                          if p.is_dir() and not p.name.startswith(".")) if submissions.is_dir() else []
    if students:
        all_students = [s for s in all_students if s in students]
    results = load_results(assignment)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    course.WORK.mkdir(parents=True, exist_ok=True)
    run_dir = Path(course.WORK / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    run_dir.mkdir(parents=True)
    template = run_dir / "template.db"
    snapshot_db(course.db_path(cfg), template)
    per_nb = float(cfg.SandboxedExecute.get("notebook_budget", 300))
    limit = hard_limit or (per_nb * max(1, len(expected)) + 120)
    settings.update(assignment=assignment, submissions=str(submissions), template=str(template))
    # the workers start (imports, first kernel) while the submissions are checked
    n_workers = min(workers, max(1, len(all_students)))
    first_uid = uid_block(n_workers)
    pool = [Worker(i, run_dir, settings, first_uid) for i in range(n_workers)]
    from nbgrader.api import Gradebook

    gradebook = None
    bar = None
    try:
        if all_students:
            for w in pool:
                w.start()
        todo = []
        for student in all_students:
            reason = inspect_submission(submissions / student / assignment, expected)
            if reason:
                summary.failed[student] = reason
                results[student] = {"status": "failed", "message": reason, "notes": [], "graded_at": now}
                _forget_autograded(assignment, student)
            else:
                todo.append(student)
        bar = tqdm(total=len(all_students), initial=len(summary.failed), unit="submission",
                   desc=assignment, disable=not progress, file=sys.stderr)
        gradebook = Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id)
        pending = list(todo)
        busy: dict[int, Worker] = {}

        def dispatch(w: Worker) -> None:
            if w.job is not None or not pending:
                return
            student = pending.pop(0)
            try:
                w.send(student)
            except OSError:  # the worker is gone: replace it and try again
                w.kill()
                w.start()
                w.send(student)
            busy[w.slot] = w

        for w in pool:
            dispatch(w)
        while busy:
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
                dispatch(w)  # the worker goes on while this result is recorded
                _record(gradebook, assignment, student, reply, results, summary, now)
                save_results(assignment, results)
                bar.update(1)
    finally:
        for w in pool:
            w.stop()
        if gradebook is not None:
            gradebook.close()
        if bar is not None:
            bar.close()
        save_results(assignment, results)
        if not settings.get("keep_work"):
            shutil.rmtree(run_dir, ignore_errors=True)
    summary.seconds = time.monotonic() - start
    return summary


def _record(gradebook, assignment, student, reply, results, summary, now) -> None:
    scratch = reply.get("scratch")
    if reply.get("ok"):
        try:
            merge_grades(gradebook, assignment, student, reply["grades"])
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
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def _precompile() -> None:
    """Write the bytecode of cnnlib and of the grader's modules into their ``__pycache__``
    folders, when missing or stale.  Kernels import both (and the tripwire reads cnnlib's
    compiled code) but cannot write there (a read-only sandbox, PYTHONDONTWRITEBYTECODE):
    without it every kernel compiles them again (~50 ms)."""
    import compileall

    from .tripwire import CNNLIB_DIR

    for folder, levels in ((CNNLIB_DIR, 10), (course.CODE, 0)):  # not the course's folders
        try:
            compileall.compile_dir(str(folder), maxlevels=levels, quiet=2)
        except Exception:  # a read-only installation: kernels compile, as before
            pass


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
