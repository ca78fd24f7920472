"""One autograde worker: grades the students the parent sends, one at a time.

Protocol: a JSON line ``{"student": ...}`` on stdin; a JSON line on stdout with
``ok``, and either ``db``/``autograded``/``notes`` or ``message``.  Everything
else (nbgrader's log) goes to stderr.  See grader/autograde.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

from . import course
from .execute import STOPPED


def _edited(submitted_nb: Path) -> set[str]:
    """Test cells whose source differs from the released one (nbgrader's checksums)."""
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


def _notes(submitted: Path, autograded: Path) -> list[str]:
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
    return notes


def grade(student: str, settings: dict, uid: int, run_dir: Path) -> dict:
    started = time.monotonic()
    assignment = settings["assignment"]
    root = run_dir / "students" / student
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copy(settings["template"], root / "gradebook.db")
    over = course.overrides(settings)
    over.CourseDirectory.source_directory = str(course.COURSE / "source")
    over.CourseDirectory.submitted_directory = settings["submissions"]
    over.CourseDirectory.autograded_directory = str(root / "autograded")
    over.SandboxKernelManager.uid = uid
    over.SandboxKernelManager.runtime_root = str(run_dir / "rt")
    over.SandboxKernelManager.extra_hidden_paths = [settings["submissions"]]
    cfg = course.load_config(over, root=root)
    result = course.api(cfg).autograde(assignment, student, force=True, create=True)
    autograded = root / "autograded" / student / assignment
    if not result["success"]:
        log = (result.get("log") or "") + (result.get("error") or "")
        errors = [ln for ln in log.splitlines() if ln.startswith("[ERROR]")]
        why = errors[0][len("[ERROR] "):] if errors else (log.strip().splitlines() or ["unknown"])[-1]
        return {"ok": False, "message": f"nbgrader could not grade it: {why}"[:500]}
    if os.geteuid() == 0:
        for base, dirs, files in os.walk(autograded):
            for name in [base, *[os.path.join(base, f) for f in dirs + files]]:
                os.lchown(name, 0, 0)
    submitted = Path(settings["submissions"]) / student / assignment
    return {"ok": True, "db": str(root / "gradebook.db"), "autograded": str(autograded),
            "notes": _notes(submitted, autograded), "seconds": round(time.monotonic() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args()
    settings = json.loads(args.settings)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the real stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        student = json.loads(line)["student"]
        try:
            reply = grade(student, settings, args.uid, args.run_dir)
        except BaseException as exc:  # report and keep serving
            if isinstance(exc, KeyboardInterrupt):
                raise
            reply = {"ok": False, "message": f"grading failed: {type(exc).__name__}: {exc}"[:500]}
        reply["student"] = student
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
