"""Autograde a class, in parallel, without sharing a gradebook between processes.

The parent process (this module):

1. checks every submission's notebooks (valid JSON, a notebook, the grading
   metadata and cells intact) and its folder (nothing but folders and regular
   files with one link: no symlink, hard link, pipe or device; within a budget);
   a broken one is recorded as ``failed`` with the reason and never reaches
   nbgrader;
2. snapshots the gradebook into a template, then starts ``workers`` worker
   processes (``python -m grader.worker``); each grades one student at a time
   with nbgrader's own ``Autograde`` into a private course folder (its own copy
   of the template gradebook, a scratch ``autograded/`` copy per student), the
   student's kernel running in the sandbox; a worker starts the next student's
   kernel while it grades the current one (grader/pool.py);
3. sends a free worker its next student at once, then merges the finished
   student's grades (which the worker sends back) into the main gradebook and
   copies the autograded folder into ``grader/autograded/`` - the parent is
   the only writer of the main gradebook.  Replies come on a pipe of their own
   that no kernel inherits, carry the job's student, assignment and random
   token, and are refused otherwise; a path in a reply is used only if it is one
   of that worker's scratch folders, and only regular files (one link, within
   ``grader.crossing.SCRATCH_BUDGET``) are copied from it (``grader/replies.py``);
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

speedups.skip_format_grammars()  # before nbformat (imported by .submission) imports jsonschema

from . import course  # noqa: E402
from .replies import Job, forget_autograded, parse_reply, record  # noqa: E402
from .submission import expected_cells, inspect_submission  # noqa: E402

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


# ---------------------------------------------------------------- the main gradebook
def snapshot_db(src: Path, dest: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)


# ---------------------------------------------------------------- workers
@dataclass
class Worker:
    slot: int
    run_dir: Path
    settings: dict
    first_uid: int = UID_BASE
    proc: subprocess.Popen | None = None
    job: Job | None = None
    log: Path | None = None
    replies: int | None = None  # our end of the worker's reply pipe
    _buffer: bytes = b""

    @property
    def home(self) -> Path:
        """The worker's own folder: every scratch folder of its jobs is a ``k<n>`` in it."""
        return self.run_dir / f"w{self.slot}"

    def start(self) -> None:
        self.log = self.run_dir / f"worker-{self.slot}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(course.REPO) + os.pathsep + env.get("PYTHONPATH", "")
        first = self.first_uid + self.slot * UIDS_PER_WORKER
        uids = ",".join(str(first + i) for i in range(UIDS_PER_WORKER))
        # Replies come on a pipe of their own (not the worker's stdout, which is its log with
        # whatever nbgrader and the libraries print); the worker passes it to no child.
        read_end, write_end = os.pipe()
        try:
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "grader.worker", "--slot", str(self.slot),
                     "--uids", uids, "--run-dir", str(self.run_dir),
                     "--settings", json.dumps(self.settings), "--reply-fd", str(write_end)],
                    stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_end,),
                    text=True, bufsize=1, start_new_session=True, cwd=str(self.run_dir), env=env)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        if self.replies is not None:
            os.close(self.replies)
        self.replies, self._buffer = read_end, b""

    def send(self, student: str, assignment: str) -> None:
        self.job = Job(student, time.monotonic())
        self.proc.stdin.write(json.dumps({"student": student, "assignment": assignment,
                                          "token": self.job.token}) + "\n")
        self.proc.stdin.flush()

    def read(self) -> str | None:
        """After select() found the reply pipe readable: a complete reply line, "" if the
        line is not complete yet, None if the worker closed the pipe (it died)."""
        data = os.read(self.replies, 1 << 20)
        if not data:
            return None
        self._buffer += data
        if len(self._buffer) > 64 * 2**20:  # no honest reply is that long
            self._buffer = b""
            return "<an oversized reply>"
        if b"\n" not in self._buffer:
            return ""
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

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
        if self.replies is not None:
            os.close(self.replies)
            self.replies = None


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
                forget_autograded(assignment, student)
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
                w.send(student, assignment)
            except OSError:  # the worker is gone: replace it and try again
                w.kill()
                w.start()
                w.send(student, assignment)
            busy[w.slot] = w

        for w in pool:
            dispatch(w)
        while busy:
            ready, _, _ = select.select([w.replies for w in busy.values()], [], [], 1.0)
            for w in list(busy.values()):
                reply, broken = None, False
                if w.replies in ready:
                    line = w.read()
                    if line == "":
                        continue  # part of a line so far
                    if line is None:  # the worker died
                        reply, broken = {"ok": False, "message": f"the grading process crashed "
                                                                 f"(see {w.log})"}, True
                    else:
                        reply, broken = parse_reply(line, w.job, assignment)
                elif time.monotonic() - w.job.started > limit:
                    reply, broken = {"ok": False, "message": f"grading took longer than {limit:.0f} s "
                                                             f"and was stopped"}, True
                    w.kill()
                if reply is None:
                    continue
                student = w.job.student
                w.job = None
                del busy[w.slot]
                if broken:  # crashed, killed, or said something that is not its reply
                    w.kill()
                    w.start()
                dispatch(w)  # the worker goes on while this result is recorded
                record(gradebook, assignment, student, reply, results, summary, now, w.home)
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
