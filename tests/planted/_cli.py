"""The grader's command line as the end-to-end tests run it: in a course copy of their own."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

# short limits: the planted submissions that loop or hog memory are stopped quickly
LIMITS = ["--cell-timeout", "4", "--notebook-budget", "30", "--memory-mb", "1024"]


def grader(*args, course: Path, check: bool = True, timeout: int = 400) -> subprocess.CompletedProcess:
    """``python -m grader ARGS`` on ``course`` (GRADER_COURSE_DIR); with ``check``, it must succeed."""
    env = dict(os.environ, GRADER_COURSE_DIR=str(course), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], env=env, cwd=course,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def rows(text: str) -> dict[str, dict]:
    """An export's CSV rows by student id."""
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO(text))}
