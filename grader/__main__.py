"""python -m grader: the course's command line (run it from any folder).

Instructor:  release, collect, autograde, feedback, export
Student:     check

A name that does not exist (an assignment, a student, a folder, a file) stops the
command with exit status 2 and a message naming what was not found and what exists.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _settings(args) -> dict:
    return {k: getattr(args, k, None) for k in
            ("cell_timeout", "notebook_budget", "memory_mb", "nproc", "sandbox")}


def _unknown(kind: str, names, existing, where: str = "") -> int:
    """Say which names were not found and which exist; exit status 2."""
    import difflib

    existing = sorted(existing)
    shown = ", ".join(existing[:30]) + (f", ... ({len(existing)} in all)" if len(existing) > 30 else "")
    for name in names:
        near = difflib.get_close_matches(name, existing, n=3)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        print(f"error: no {kind} {name!r}{where} (there {'is' if len(existing) == 1 else 'are'}: "
              f"{shown or 'none'}){hint}", file=sys.stderr)
    return 2


def _source_assignments() -> list[str]:
    from . import course

    return course.source_assignments() if (course.COURSE / "source").is_dir() else []


def cmd_release(args) -> int:
    from . import course

    have = _source_assignments()
    unknown = [a for a in args.assignments if a not in have]
    if unknown:
        return _unknown("assignment", unknown, have, f" in {course.COURSE / 'source'}")
    due = None
    if args.due is not None:
        from .due import parse_when, show_when

        try:
            due = None if args.due.lower() in ("", "none") else parse_when(args.due)
        except ValueError as exc:
            print(f"error: --due: {exc}", file=sys.stderr)
            return 2
    assignments = args.assignments or have
    api = course.api()
    status = 0
    for a in assignments:
        result = api.generate_assignment(a, force=True, create=True)
        if result["success"]:
            note = ""
            if args.due is not None:
                from .due import set_due

                set_due(a, due)
                note = f" (due {show_when(due)})" if due else " (no due date)"
            print(f"released {a} -> {course.COURSE / 'release' / a}{note}")
        else:
            status = 1
            print(f"could not release {a}:\n{result.get('log', '')}{result.get('error', '')}",
                  file=sys.stderr)
    return status


def cmd_collect(args) -> int:
    from . import course
    from .collect import CollectError, collect, report

    have = _source_assignments()
    if args.assignment not in have:
        return _unknown("assignment", [args.assignment], have, f" in {course.COURSE / 'source'}")
    try:
        out = collect(args.assignment, args.zip, args.roster, lms=args.lms, replace=args.replace,
                      zip_times=not args.no_timestamps)
    except CollectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if str(exc).startswith("no ") else 1
    return report(args.assignment, out)


def _key_results(assignment: str, folder: str) -> None:
    """grader/results/<assignment>.json holds the results of one submissions folder: a run
    on another folder replaces them instead of merging (each result records its folder)."""
    from .autograde import load_results, save_results

    results = load_results(assignment)
    other = {s for s, r in results.items() if r.get("submissions", folder) != folder}
    if other:
        folders = sorted({results[s]["submissions"] for s in other})
        save_results(assignment, {s: r for s, r in results.items() if s not in other})
        print(f"{assignment}: the results of {len(other)} students from {', '.join(folders)} are "
              f"replaced by this run on {folder}", file=sys.stderr)


def _after_autograde(assignment: str, folder: str, summary) -> None:
    """Mark this run's results with its folder; put the failed students in the gradebook
    (the export lists the gradebook's students)."""
    from nbgrader.api import Gradebook

    from . import course
    from .autograde import load_results, save_results

    results = load_results(assignment)
    for student in [*summary.graded, *summary.failed]:
        if student in results:
            results[student]["submissions"] = folder
    save_results(assignment, results)
    cfg = course.load_config()
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        for student in summary.failed:
            gb.update_or_create_student(student)


def cmd_autograde(args) -> int:
    from . import course
    from .autograde import autograde

    have = sorted(set(_source_assignments()) | set(_gradebook_assignments()))
    if args.assignment not in have:
        return _unknown("assignment", [args.assignment], have)
    folder = Path(args.submissions or course.COURSE / "submitted").resolve()
    if not folder.is_dir():
        print(f"error: no submissions folder {folder}", file=sys.stderr)
        return 2
    if args.student:
        present = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        unknown = [s for s in args.student if s not in present]
        if unknown:
            return _unknown("student", unknown, present, f" in {folder}")
    _key_results(args.assignment, str(folder))
    summary = autograde(args.assignment, submissions=folder, workers=args.workers,
                        settings=_settings(args), students=args.student or None,
                        progress=not args.no_progress)
    _after_autograde(args.assignment, str(folder), summary)
    for student, why in sorted(summary.failed.items()):
        print(f"FAILED {student}: {why}", file=sys.stderr)
    print(summary.line())
    return 0


def _gradebook_assignments() -> list[str]:
    from .export import gradebook_assignments

    return gradebook_assignments()


def cmd_feedback(args) -> int:
    from . import course
    from .feedback import generate, students_with_results

    have = _gradebook_assignments()
    if args.assignment not in have:
        return _unknown("assignment", [args.assignment], have, " in the gradebook")
    if args.student:
        known = students_with_results(args.assignment)
        unknown = [s for s in args.student if s not in known]
        if unknown:
            return _unknown("student", unknown, known, f" with a result for {args.assignment}")
    done, failed, problems = generate(args.assignment, students=args.student or None)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{args.assignment}: feedback for {len(done)} graded students"
          + (f" and {len(failed)} whose grading failed" if failed else "")
          + f" in {course.COURSE / 'feedback'}/")
    return 1 if problems else 0


def cmd_export(args) -> int:
    from .export import NotFound, export, export_canvas

    try:
        if args.format == "canvas":
            if args.by_test:
                print("error: --by-test has no Canvas format", file=sys.stderr)
                return 2
            if not args.roster:
                print("error: --format canvas needs --roster ROSTER.csv (the Canvas ids)", file=sys.stderr)
                return 2
            if not Path(args.roster).is_file():
                print(f"error: no roster file {args.roster}", file=sys.stderr)
                return 2
            text, off_roster = export_canvas(Path(args.roster), assignments=args.assignment or None)
        else:
            text, off_roster = export(by_test=args.by_test, assignments=args.assignment or None), []
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if off_roster:
        print(f"error: not on the roster, so not in the Canvas file: {', '.join(off_roster)}",
              file=sys.stderr)
        return 1
    return 0


def cmd_check(args) -> int:
    from .check import check

    return check(Path(args.notebook), timeout=args.cell_timeout, sandbox=args.sandbox)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate the student versions into grader/release/")
    p.add_argument("assignments", nargs="*", help="default: every assignment in grader/source/")
    p.add_argument("--due", metavar="WHEN",
                   help="due date stored in the gradebook, e.g. 2026-12-10T23:59 (the course's time "
                        "zone unless an offset is given; 'none' removes it)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("collect", help="unpack a Canvas or Moodle submissions zip into grader/submitted/")
    p.add_argument("assignment")
    p.add_argument("zip", type=Path, help="the zip of submissions downloaded from the LMS")
    p.add_argument("--roster", type=Path, required=True,
                   help="CSV with student_id and name (and canvas_id, moodle_id, sis_user_id, ...)")
    p.add_argument("--lms", choices=["canvas", "moodle"], help="default: guessed from the file names")
    p.add_argument("--replace", action="store_true",
                   help="replace submissions already in grader/submitted/ that differ")
    p.add_argument("--no-timestamps", action="store_true",
                   help="do not take the submission times from the zip's file dates")
    p.set_defaults(func=cmd_collect)

    def limits(p):
        p.add_argument("--cell-timeout", type=int, help="seconds per cell (config: 30)")
        p.add_argument("--notebook-budget", type=int, help="seconds per notebook (config: 300)")
        p.add_argument("--memory-mb", type=int, help="address-space limit of a kernel (config: 2048)")
        p.add_argument("--nproc", type=int, help="process limit of a kernel (config: 64)")
        p.add_argument("--sandbox", choices=["auto", "bwrap", "none"],
                       help="bwrap: refuse to run without bubblewrap; none: limits only")

    p = sub.add_parser("autograde", help="grade DIR/<student>/<ASSIGNMENT>/*.ipynb")
    p.add_argument("assignment")
    p.add_argument("--submissions", type=Path, help="default: grader/submitted")
    p.add_argument("--workers", type=int, default=None, help="default: number of CPU cores")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    limits(p)
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser("feedback", help="feedback HTML into grader/feedback/<student>/<ASSIGNMENT>/")
    p.add_argument("assignment")
    p.add_argument("--student", action="append")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export", help="CSV of the grades")
    p.add_argument("--by-test", action="store_true", help="one row per graded cell, with why it lost points")
    p.add_argument("--format", choices=["csv", "canvas"], default="csv",
                   help="canvas: Canvas's gradebook import file (needs --roster)")
    p.add_argument("--roster", help="the roster CSV (for --format canvas)")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", help="run a notebook's visible tests before submitting")
    p.add_argument("notebook")
    p.add_argument("--cell-timeout", type=int, help="seconds per cell (default: as when graded)")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="auto (default): bubblewrap when it works, as when graded")
    p.set_defaults(func=cmd_check)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
