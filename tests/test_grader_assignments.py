"""Assignments a2..a6 through the real grader: each source notebook passes its own tests, each
released stub scores zero, and each planted submission (typical bugs, disguised use of cnnlib)
gets exactly the score and status its module expects."""
from __future__ import annotations

import csv
import importlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

ASSIGNMENTS = {"a2-conv-backprop": "a2_conv_backprop", "a3-pooling": "a3_pooling",
               "a4-transposed-conv": "a4_transposed_conv", "a5-train-a-cnn": "a5_train_a_cnn",
               "a6-saturation": "a6_saturation"}
# a5 trains a network per submission, so its cells need more than the others.
LIMITS = ["--cell-timeout", "60", "--notebook-budget", "180", "--memory-mb", "2048"]


def grader(*args, course: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRADER_COURSE_DIR=str(course), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], env=env, cwd=course,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_passes_its_own_tests(assignment):
    from nbgrader.validator import Validator

    assert Validator().validate(str(REPO / "grader" / "source" / assignment / f"{assignment}.ipynb")) == {}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Release every assignment, plant every variant as a student, autograde, export totals."""
    root = tmp_path_factory.mktemp("assignments")
    course = root / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    grader("release", *ASSIGNMENTS, course=course)
    for assignment, module in ASSIGNMENTS.items():
        planted = importlib.import_module(f"planted.{module}")
        release = course / "release" / assignment / f"{assignment}.ipynb"
        planted.make_class(release, root / "submissions" / assignment)
        grader("autograde", assignment, "--submissions", root / "submissions" / assignment,
               "--workers", "2", "--no-progress", *LIMITS, course=course)
    out = grader("export", course=course).stdout
    return {(r["assignment"], r["student_id"]): r for r in csv.DictReader(io.StringIO(out))}


@pytest.mark.parametrize("assignment,module", ASSIGNMENTS.items())
def test_planted_submissions_get_their_expected_scores(export, assignment, module):
    planted = importlib.import_module(f"planted.{module}")
    wrong = {}
    for variant, (score, status) in planted.EXPECTED.items():
        row = export[(assignment, variant)]
        if (float(row["score"]), row["status"]) != (float(score), status):
            wrong[variant] = (row["score"], row["status"], row["message"], "expected", score, status)
    assert not wrong, wrong
    assert float(export[(assignment, "stub")]["score"]) == 0
    # Honest work is never sent to review; a disguised import of the engine is.
    for variant in planted.EXPECTED:
        flagged = "review by hand" in export[(assignment, variant)]["message"]
        if variant.startswith("correct"):
            assert not flagged, export[(assignment, variant)]
        if variant == "disguised-import":
            assert flagged, export[(assignment, variant)]
