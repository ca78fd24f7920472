"""python -m grader: the course's command line (run it from any folder).

Instructor:  release, autograde, feedback, export
Student:     check
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _settings(args) -> dict:
    return {k: getattr(args, k, None) for k in
            ("cell_timeout", "notebook_budget", "memory_mb", "nproc", "sandbox")}


def cmd_release(args) -> int:
    from . import course

    assignments = args.assignments or course.source_assignments()
    api = course.api()
    status = 0
    for a in assignments:
        result = api.generate_assignment(a, force=True, create=True)
        if result["success"]:
            print(f"released {a} -> {course.COURSE / 'release' / a}")
        else:
            status = 1
            print(f"could not release {a}:\n{result.get('log', '')}{result.get('error', '')}",
                  file=sys.stderr)
    return status


def cmd_autograde(args) -> int:
    from .autograde import autograde

    summary = autograde(args.assignment, submissions=args.submissions, workers=args.workers,
                        settings=_settings(args), students=args.student or None,
                        progress=not args.no_progress)
    for student, why in sorted(summary.failed.items()):
        print(f"FAILED {student}: {why}", file=sys.stderr)
    print(summary.line())
    return 0


def cmd_feedback(args) -> int:
    from . import course
    from .feedback import generate

    done, problems = generate(args.assignment, students=args.student or None)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{args.assignment}: feedback for {len(done)} students in {course.COURSE / 'feedback'}/")
    return 1 if problems else 0


def cmd_export(args) -> int:
    from .export import export

    text = export(by_test=args.by_test, assignments=args.assignment or None)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_check(args) -> int:
    from .check import check

    return check(Path(args.notebook), timeout=args.cell_timeout or 60,
                 sandbox=args.sandbox or "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate the student versions into grader/release/")
    p.add_argument("assignments", nargs="*", help="default: every assignment in grader/source/")
    p.set_defaults(func=cmd_release)

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
    p.add_argument("--by-test", action="store_true", help="one row per graded cell")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", help="run a notebook's visible tests before submitting")
    p.add_argument("notebook")
    p.add_argument("--cell-timeout", type=int, help="seconds per cell (default 60)")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="none")
    p.set_defaults(func=cmd_check)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
