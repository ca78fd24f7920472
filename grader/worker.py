"""One autograde worker: grades the students the parent sends, one at a time.

Protocol: a JSON line ``{"student", "assignment", "token"}`` on stdin; one JSON
line back on the reply descriptor (``--reply-fd``, a pipe of its own that is
neither stdin, stdout nor stderr and that no kernel inherits) with ``ok`` and the
job's ``student``, ``assignment`` and ``token`` echoed, ``scratch`` (the folder
the parent copies the graded files from, checks and removes) and either
``grades``/``notes``/``removed`` or ``message``.  Everything else (nbgrader's
log, anything a library prints) goes to stdout/stderr, the worker's log file.
See grader/autograde.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import speedups

speedups.skip_format_grammars()  # before anything imports jsonschema

from . import course, crossing, sandbox  # noqa: E402


def _edited(submitted_nb: Path) -> set[str]:
    """Test cells whose source differs from the released one (nbgrader's checksums)."""
    import nbformat
    from nbgrader.utils import compute_checksum

    edited = set()
    try:
        nb = nbformat.read(submitted_nb, as_version=4)
    except Exception:
        return edited
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution") and "checksum" in meta:
            if compute_checksum(cell) != meta["checksum"]:
                edited.add(meta.get("grade_id"))
    return edited


def _keep_submission_time(submitted: Path, autograded: Path) -> None:
    """The graded folder's timestamp.txt is the submission's: the kernel could rewrite the copy
    in its scratch folder (the gradebook read the time before it ran; this keeps the copy kept
    in grader/autograded/ honest too). The kernel is dead and the folder swept of links."""
    kept = autograded / "timestamp.txt"
    if kept.exists() or kept.is_symlink():
        kept.unlink()
    if (submitted / "timestamp.txt").is_file():
        shutil.copyfile(submitted / "timestamp.txt", kept)


def _notes(submitted: Path, autograded: Path) -> list[str]:
    import nbformat

    from .execute import STOPPED
    from .review import review_note

    notes = []
    for path in sorted(autograded.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        edited = _edited(submitted / path.name)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            cid = meta.get("grade_id", cell.get("id", "?"))
            if cid in edited:
                notes.append(f"{cid}: test cell had been edited; the original was restored")
            for out in cell.get("outputs", []):
                if out.get("output_type") != "error":
                    continue
                if out.get("ename") in STOPPED or out.get("ename") == "IntegrityError":
                    notes.append(f"{cid}: {out['ename']}: {out.get('evalue', '')[:200]}")
        tampering = review_note(submitted / path.name)
        if tampering:
            notes.append(tampering)
    return notes


def _grades(gb, assignment: str, student: str) -> dict:
    """This student's autograde results from the worker's gradebook, for the parent."""
    sub = gb.find_submission(assignment, student)
    return {
        "timestamp": sub.timestamp.isoformat() if sub.timestamp else None,
        "notebooks": [{
            "name": nb.name,
            "flagged": bool(nb.flagged),
            "late_submission_penalty": nb.late_submission_penalty,
            "grades": [[g.name, g.auto_score, bool(g.needs_manual_grade)] for g in nb.grades],
            "comments": [[c.name, c.auto_comment] for c in nb.comments],
        } for nb in sub.notebooks],
    }


class Grader:
    """Grades the students the parent sends, one at a time, with nbgrader's Autograde.

    The worker keeps one private gradebook (a copy of the parent's snapshot) for all
    its students and answers with each student's grades; the parent is the only
    writer of the course's gradebook.  Kernels come from a grader.pool.KernelPool,
    so the next student's kernel boots while this one is graded."""

    def __init__(self, slot: int, uids: list[int], run_dir: Path, settings: dict):
        from .pool import KernelPool

        self.settings = settings
        self.assignment = settings["assignment"]
        self.home = run_dir / f"w{slot}"
        self.home.mkdir(parents=True, exist_ok=True)
        db = self.home / "gradebook.db"
        shutil.copy(settings["template"], db)
        over = course.overrides(settings)
        over.CourseDirectory.source_directory = str(course.COURSE / "source")
        over.CourseDirectory.submitted_directory = settings["submissions"]
        over.CourseDirectory.autograded_directory = str(self.home / "autograded")
        over.CourseDirectory.db_url = "sqlite:///" + str(db)
        over.SandboxKernelManager.uid = uids[0]
        over.SandboxKernelManager.runtime_root = str(run_dir / "rt")
        over.SandboxKernelManager.preload = True
        self.cfg = course.load_config(over, root=self.home)
        self.cfg.CourseDirectory.db_url = "sqlite:///" + str(db)
        # start the first kernel now: it boots while nbgrader is being imported
        self.pool = KernelPool(self.cfg, uids, self.home, log=lambda t: print(t, file=sys.stderr))
        self.pool.launch_sync()
        from . import execute  # nbgrader: about a second to import

        execute.KERNELS = self.pool
        speedups.reuse_gradebook_connections(scratch=True)
        speedups.cache_metadata_schema()
        self.api = course.api(self.cfg)

    def grade(self, student: str) -> dict:
        from nbgrader.api import Gradebook

        started = time.monotonic()
        scratch = self.pool.next_root()  # the warm kernel's root: the scratch copy goes there
        self.api.coursedir.autograded_directory = str(scratch)
        crossing.REMOVED.clear()
        try:
            result = self.api.autograde(self.assignment, student, force=True, create=True)
        finally:
            self.pool.retire_sync(scratch)  # an untaken warm kernel there serves nobody else
        autograded = scratch / student / self.assignment
        # every kernel of this student is dead: sweep once more before reading anything there
        # (each kernel's folder was swept when it died, before nbgrader wrote the notebook)
        removed = [(path, why) for path, why in crossing.REMOVED]
        removed += [(str(scratch / rel), why) for rel, why in crossing.sanitize(scratch)]
        removed = sorted({(os.path.relpath(path, autograded), why) for path, why in removed
                          if sandbox._inside(Path(path), autograded)})
        if len(removed) > 1000:  # a reply stays small
            removed = removed[:1000] + [("", f"{len(removed) - 1000} more entries removed")]
        if not result["success"]:
            log = (result.get("log") or "") + (result.get("error") or "")
            errors = [ln for ln in log.splitlines() if ln.startswith("[ERROR]")]
            why = errors[0][len("[ERROR] "):] if errors else (log.strip().splitlines() or ["unknown"])[-1]
            return {"ok": False, "message": f"nbgrader could not grade it: {why}"[:500],
                    "scratch": str(scratch)}
        submitted = Path(self.settings["submissions"]) / student / self.assignment
        _keep_submission_time(submitted, autograded)
        if os.geteuid() == 0:
            for base, dirs, files in os.walk(autograded):
                for name in [base, *[os.path.join(base, f) for f in dirs + files]]:
                    os.lchown(name, 0, 0)
        with Gradebook(self.cfg.CourseDirectory.db_url, self.cfg.CourseDirectory.course_id) as gb:
            grades = _grades(gb, self.assignment, student)
        return {"ok": True, "grades": grades, "scratch": str(scratch), "removed": removed,
                "notes": _notes(submitted, autograded), "seconds": round(time.monotonic() - started, 2)}

    def close(self) -> None:
        try:
            self.pool.close_sync()
        except Exception:
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--uids", required=True, help="comma-separated user ids for the kernels")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--reply-fd", type=int, required=True,
                        help="the descriptor of the reply pipe to the parent (not 0, 1 or 2)")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    if args.reply_fd in (0, 1, 2):
        raise SystemExit("grader.worker: the reply channel must not be a standard stream")
    os.set_inheritable(args.reply_fd, False)  # no child process (a kernel) gets it
    out = os.fdopen(args.reply_fd, "w", encoding="utf-8")
    sys.stdout = sys.stderr
    grader = Grader(args.slot, [int(u) for u in args.uids.split(",")], args.run_dir, settings)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            student = job["student"]
            try:
                reply = grader.grade(student)
            except BaseException as exc:  # report and keep serving
                if isinstance(exc, KeyboardInterrupt):
                    raise
                reply = {"ok": False, "message": f"grading failed: {type(exc).__name__}: {exc}"[:500]}
            reply.update(student=student, assignment=job.get("assignment"), token=job.get("token"))
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        grader.close()
    out.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the interpreter's slow teardown of nbgrader, SQLAlchemy and zmq


if __name__ == "__main__":
    main()
