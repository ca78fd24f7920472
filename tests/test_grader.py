"""The grader end to end: validation, release, planted submissions, autograde, export, feedback.

Runs in a copy of the course (GRADER_COURSE_DIR), with short time limits.
"""
from __future__ import annotations

import csv
import html as htmllib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "grader" / "source" / "a1-convolution" / "a1-convolution.ipynb"
sys.path.insert(0, str(REPO / "tests"))
from planted import a1_convolution as planted  # noqa: E402
from planted._cli import LIMITS, grader, rows  # noqa: E402


# ---------------------------------------------------------------- nbgrader's validator
def test_source_passes_its_own_tests_and_validator_reports_failures(tmp_path):
    from nbgrader.validator import Validator

    assert Validator().validate(str(SOURCE)) == {}
    nb = nbformat.read(SOURCE, as_version=4)
    for cell in nb.cells:  # plant a flipped kernel in the solution
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "conv2d_forward":
            cell.source = cell.source.replace("w[:, :, u, v]", "w[:, :, -1 - u, -1 - v]")
    wrong = tmp_path / "a1-convolution.ipynb"
    nbformat.write(nb, wrong)
    failures = Validator().validate(str(wrong))
    assert failures and "failed" in failures


# ---------------------------------------------------------------- one graded class
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grader")
    course = root / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    grader("release", "a1-convolution", course=course)
    release = course / "release" / "a1-convolution" / "a1-convolution.ipynb"
    submissions = root / "submissions"
    planted.make_class(release, submissions)
    run = grader("autograde", "a1-convolution", "--submissions", submissions, "--workers", "2",
                 "--no-progress", *LIMITS, course=course)
    export = grader("export", course=course).stdout
    return {"course": course, "submissions": submissions, "run": run, "export": rows(export),
            "release": release}


MARKERS = ("SOLUTION", "HIDDEN TESTS", "MARK SCHEME")


def _secret_lines(source: Path) -> set[str]:
    """Lines between BEGIN/END SOLUTION, HIDDEN TESTS or MARK SCHEME markers that appear
    nowhere else in the source notebook, not even within a line (the answer key's own)."""
    secret, public = set(), set()
    for cell in nbformat.read(source, as_version=4).cells:
        inside = None
        for line in cell.source.splitlines():
            text = line.strip()
            marker = next((m for m in MARKERS if f"BEGIN {m}" in text or f"END {m}" in text), None)
            if marker:
                inside = marker if f"BEGIN {marker}" in text else None
                continue
            (secret if inside else public).add(text)
    shown = "\n".join(public)
    return {line for line in secret if len(line) >= 12 and line not in shown}


def test_release_hides_solutions_and_hidden_tests(tmp_path):
    """Every file of the student download, for every assignment: no solution, no hidden
    test, no mark scheme, not even one line of them."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    grader("release", course=course)
    sources = sorted(p for p in (REPO / "grader" / "source").iterdir() if p.is_dir())
    assert len(sources) >= 6
    for source in sources:
        secrets = set().union(*(_secret_lines(nb) for nb in source.glob("*.ipynb")))
        assert len(secrets) > 10, source
        files = [p for p in (course / "release" / source.name).rglob("*") if not p.is_dir()]
        assert sorted(p.name for p in files) == sorted(p.name for p in source.rglob("*") if p.is_file())
        for path in files:
            assert not path.is_symlink(), path
            raw = path.read_bytes().decode("utf-8", "replace")
            texts = [raw]
            if path.suffix == ".ipynb":
                nb = nbformat.reads(raw, as_version=4)
                texts.append("\n".join(c.source for c in nb.cells))
                texts.append(json.dumps([c.get("outputs", []) for c in nb.cells]))
                assert "raise NotImplementedError()" in texts[1]
            for text in texts:
                for marker in MARKERS:
                    assert f"BEGIN {marker}" not in text and f"END {marker}" not in text, (path, marker)
                for line in secrets:
                    assert line not in text and json.dumps(line)[1:-1] not in text, (path, line)


@pytest.mark.parametrize("variant", sorted(planted.EXPECTED))
def test_planted_submission_score_and_status(graded, variant):
    score, status = planted.EXPECTED[variant]
    row = graded["export"][variant]
    assert row["status"] == status, row
    assert row["max_score"] == "15"
    if status == "failed":
        assert row["score"] == "" and row["message"], row
    else:
        assert float(row["score"]) == score, row


def test_released_stub_scores_zero(graded):
    assert graded["export"]["stub"]["score"] == "0"


def test_failures_say_why(graded):
    ex = graded["export"]
    assert "not valid JSON" in ex["not-json"]["message"]
    assert "lost its grading metadata" in ex["stripped-metadata"]["message"]
    assert "test_conv2d_by_hand" in ex["deleted-cell"]["message"]
    assert "IntegrityError" in ex["disguised-import"]["message"]
    assert "a copy of its code" in ex["source-from-disk"]["message"]
    assert "KernelKilled" in ex["ignores-sigint"]["message"]
    assert "CellTimeoutError" in ex["infinite-loop"]["message"]
    assert "restored" in ex["edited-tests"]["message"]
    line = graded["run"].stdout.strip().splitlines()[-1]
    assert re.search(r"32 submissions, 29 graded, 3 failed in [\d.]+ s", line), line


def test_honest_recursion_is_a_recursion_error_not_cheating(graded):
    path = graded["course"] / "autograded" / "deep-recursion" / "a1-convolution" / "a1-convolution.ipynb"
    errors = {c.metadata["nbgrader"]["grade_id"]: [f"{o['ename']}: {o['evalue']}" for o in c.outputs
                                                   if o["output_type"] == "error"]
              for c in nbformat.read(path, as_version=4).cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    assert "raised RecursionError" in errors["test_output_size_hidden"][0], errors
    assert not any("IntegrityError" in e for es in errors.values() for e in es), errors
    assert errors["test_conv2d_hidden_channels"] == errors["test_conv2d_hidden_stride_padding"] == [], errors


def test_no_hidden_test_code_ever_reaches_the_kernel(graded):
    """The kernel never runs a test cell: what a notebook can dump (its input history, its
    namespace) holds no hidden test, in its outputs or in the files it wrote."""
    secrets = [ln.strip() for ln in _secret_lines(SOURCE) if "default_rng" in ln or "checks.compare" in ln]
    assert secrets
    autograded = graded["course"] / "autograded" / "history-dump" / "a1-convolution"
    nb = nbformat.read(autograded / "a1-convolution.ipynb", as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "HISTORY" in outputs and "conv2d_forward" in outputs  # the dump happened
    dumped = outputs + "".join(p.read_text(errors="replace") for p in autograded.glob("*.txt"))
    for line in secrets:
        assert line not in dumped and json.dumps(line)[1:-1] not in dumped, line


TAMPERING = {"rewrite-grader", "patch-numpy", "lying-array", "patch-reference", "disguised-import",
             "source-from-disk", "steal-solution", "read-secrets", "rebind-test-names", "patch-builtins",
             "patch-numpy-random", "wrap-execute", "lying-objects", "history-dump",
             "ignores-sigint",  # imports signal to ignore the grader's interrupt
             "fork-bomb"}       # os.fork


@pytest.mark.parametrize("variant", sorted(planted.EXPECTED))
def test_code_that_reaches_into_the_grader_is_flagged_for_review(graded, variant):
    flagged = "review by hand" in graded["export"][variant]["message"]
    assert flagged == (variant in TAMPERING), graded["export"][variant]


def test_a_flood_of_output_is_cut_at_a_megabyte_per_cell(graded):
    path = graded["course"] / "autograded" / "print-flood" / "a1-convolution" / "a1-convolution.ipynb"
    assert path.stat().st_size < 3 * 2**20, path.stat().st_size
    assert "output truncated" in path.read_text()


def test_limits_contained_the_hostile_ones(graded):
    nb = graded["course"] / "autograded" / "memory-bomb" / "a1-convolution" / "a1-convolution.ipynb"
    text = nb.read_text()
    assert "MemoryError" in text
    fork = (graded["course"] / "autograded" / "fork-bomb" / "a1-convolution"
            / "a1-convolution.ipynb").read_text()
    assert "KernelKilled" in fork or "Resource temporarily unavailable" in fork


def test_by_test_export(graded):
    text = grader("export", "--by-test", course=graded["course"]).stdout
    header = text.splitlines()[0]
    assert header == "student_id,assignment,notebook,grade_id,score,max_score,message"
    mine = [r for r in csv.DictReader(io.StringIO(text)) if r["student_id"] == "forgot-stride"]
    scores = {r["grade_id"]: float(r["score"]) for r in mine}
    assert scores["test_conv2d_hidden_stride_padding"] == 0
    assert scores["test_conv2d_hidden_channels"] == 2
    assert scores["test_output_size"] == 1
    assert not any(r["student_id"] == "not-json" for r in csv.DictReader(io.StringIO(text)))


def test_feedback_has_no_hidden_tests_and_offline_math(graded):
    course = graded["course"]
    grader("feedback", "a1-convolution", course=course)
    source = SOURCE.read_text()
    hidden = re.findall(r"BEGIN HIDDEN TESTS(.*?)END HIDDEN TESTS", json.loads(source) and source, re.S)
    hidden_lines = {ln.strip().strip('",').replace('\\"', '"') for block in hidden
                    for ln in block.split("\\n") if len(ln.strip()) > 20}
    pages = list((course / "feedback").glob("*/a1-convolution/a1-convolution.html"))
    failed = {p for p in pages if p.parent.parent.name in ("not-json", "stripped-metadata", "deleted-cell")}
    graded_ones = sum(1 for _, status in planted.EXPECTED.values() if status == "graded")
    assert len(failed) == 3 and len(pages) == graded_ones + 3  # failed students get a page that says why
    for page in failed:
        text = page.read_text()
        assert "could not be graded" in text and graded["export"][page.parent.parent.name]["message"] \
            in htmllib.unescape(text)
    pages = [p for p in pages if p not in failed]
    assert len(hidden_lines) > 10
    for page in pages:
        html = page.read_text()
        text = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
        assert 'checks.check_value("output_size", output_size, (7, 3), 5)' in text  # visible tests stay
        assert "HIDDEN TESTS" not in text
        for line in hidden_lines:
            assert line not in text, (page, line)
        assert not re.search(r'<script[^>]*src="https?://', html), page
        assert 'src="mathjax/tex-svg.js"' in html
        assert (page.parent / "mathjax" / "tex-svg.js").stat().st_size > 100_000
    flipped = (course / "feedback" / "flipped-kernel" / "a1-convolution" / "a1-convolution.html").read_text()
    assert "the kernel is flipped" in flipped


def test_regrading_replaces_the_previous_result(graded):
    course, subs = graded["course"], graded["submissions"]
    # the student fixes the stride bug and submits again
    planted.make(graded["release"], subs / "forgot-stride" / "a1-convolution", "correct-im2col")
    grader("autograde", "a1-convolution", "--submissions", subs, "--student", "forgot-stride",
           "--no-progress", *LIMITS, course=course)
    after = rows(grader("export", course=course).stdout)
    assert after["forgot-stride"]["score"] == "13"
    assert after["correct-loops"] == graded["export"]["correct-loops"]


def test_the_sandbox_is_what_keeps_secrets(graded, tmp_path):
    """Control: without the sandbox the same planted submissions do read the secrets."""
    subs, course = graded["submissions"], tmp_path / "course"  # a course of its own: the
    shutil.copytree(graded["course"] / "source", course / "source")  # class's results stay
    grader("release", "a1-convolution", course=course)
    control = tmp_path / "control"
    for name in ("read-secrets", "steal-solution"):
        shutil.copytree(subs / name, control / name)
    grader("autograde", "a1-convolution", "--submissions", control, "--sandbox", "none",
           "--no-progress", *LIMITS, course=course)
    after = rows(grader("export", course=course).stdout)
    assert float(after["read-secrets"]["score"]) < 13
    assert float(after["steal-solution"]["score"]) > 2


# ---------------------------------------------------------------- the student's check
def test_check_passes_a_correct_notebook_and_explains_a_wrong_one(graded, tmp_path):
    good = planted.make(graded["release"], tmp_path / "good", "correct-loops")
    proc = grader("check", good, course=graded["course"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 of 4 passed" in proc.stdout and "hidden tests" in proc.stdout
    bad = planted.make(graded["release"], tmp_path / "bad", "forgot-stride")
    proc = grader("check", bad, course=graded["course"], check=False)
    assert proc.returncode == 1
    assert "FAIL  test_conv2d_shapes" in proc.stdout
    assert "returned shape (2, 4, 5, 8), expected (2, 4, 3, 4)" in proc.stdout



def test_check_without_bubblewrap_says_so_in_one_line(graded, tmp_path, monkeypatch, capsys):
    """A student's machine without bubblewrap: one note, not the instructor's sandbox alarm."""
    from grader import check, sandbox

    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    good = planted.make(graded["release"], tmp_path / "good", "correct-im2col")
    out = io.StringIO()
    assert check.check(good, timeout=10, out=out) == 0, out.getvalue()
    assert "runs without the sandbox (grading uses it)" in out.getvalue()
    assert "WITHOUT a" not in capsys.readouterr().err


def test_check_runs_no_cell_of_a_submitted_notebook_outside_the_sandbox(graded, tmp_path):
    """An instructor checking a student's notebook: a test cell with code added (its checksum
    dropped, so it does not even show as edited) and a new read-only cell must not run in the
    checking process, which sees the answer key; the released notebook's cells run there."""
    marker = tmp_path / "ran-outside-the-sandbox"
    payload = f"open({str(marker)!r}, 'w').write('escaped')\n"
    nb = nbformat.read(graded["release"], as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                and not c.metadata["nbgrader"].get("solution"))
    test.source = payload + test.source
    del test.metadata["nbgrader"]["checksum"]
    nb.cells.insert(1, nbformat.v4.new_code_cell(payload, metadata={"nbgrader": {
        "locked": True, "grade": False, "solution": False, "grade_id": "innocent", "schema_version": 3}}))
    (tmp_path / "hostile").mkdir()
    path = tmp_path / "hostile" / "a1-convolution.ipynb"
    nbformat.write(nb, path)
    proc = grader("check", path, "--cell-timeout", "4", course=graded["course"], check=False)
    assert "running" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists(), proc.stdout


def test_check_run_by_root_gives_the_kernel_no_privilege(graded, tmp_path):
    """An instructor (root) checking a notebook: its kernel runs as another user without
    capabilities, as in grading, so it cannot remount the read-only runtime and write into the
    engine that every later grade compares against."""
    import cnnlib

    engine = Path(cnnlib.__file__).resolve().parent
    marker = engine / f"written-by-check-{os.getpid()}.txt"
    nb = nbformat.read(graded["release"], as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "output_size")
    cell.source = (f"import subprocess\nsubprocess.run(['mount', '-o', 'remount,rw,bind', {str(engine)!r}])\n"
                   f"open({str(marker)!r}, 'w').write('x')\n")
    (tmp_path / "root").mkdir()
    path = tmp_path / "root" / "a1-convolution.ipynb"
    nbformat.write(nb, path)
    try:
        proc = grader("check", path, "--cell-timeout", "10", course=graded["course"], check=False)
        assert "output_size" in proc.stdout, proc.stdout + proc.stderr
        assert not marker.exists(), proc.stdout
    finally:
        marker.unlink(missing_ok=True)


CHECK_LINE = re.compile(r"^\s+(pass|part|FAIL|EDIT|----)\s+(\w+)\s", re.M)


def test_check_and_autograde_agree_on_every_planted_submission(graded, tmp_path):
    """What `check` says of each visible test is what grading made of it: a pass is full marks,
    a failure is none, an edited or mixed (visible and hidden) test is never shown as passed."""
    from concurrent.futures import ThreadPoolExecutor

    variants = [v for v, (_, status) in planted.EXPECTED.items() if status == "graded"]

    def run(variant):  # the notebook grading last saw (a test may have replaced it since)
        (tmp_path / variant).mkdir()
        path = tmp_path / variant / "a1-convolution.ipynb"
        shutil.copy(graded["submissions"] / variant / "a1-convolution" / "a1-convolution.ipynb", path)
        proc = grader("check", path, "--cell-timeout", "4", course=graded["course"], check=False)
        return variant, proc.stdout

    with ThreadPoolExecutor(2) as pool:
        said = dict(pool.map(run, variants))
    for variant in variants:
        verdicts = dict((gid, word) for word, gid in CHECK_LINE.findall(said[variant]))
        path = graded["course"] / "autograded" / variant / "a1-convolution" / "a1-convolution.ipynb"
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade") or meta.get("solution"):
                continue
            gid, failed = meta["grade_id"], any(o["output_type"] == "error" for o in cell.outputs)
            word = verdicts.get(gid)
            assert word is not None, (variant, gid, said[variant])
            if word == "pass":
                assert not failed, (variant, gid, said[variant])
            elif word == "FAIL":
                assert failed, (variant, gid, said[variant])
            else:
                assert word in ("part", "EDIT", "----"), (variant, gid, word)
        if variant == "edited-tests":
            assert "EDIT" in said[variant] and "pass " not in said[variant], said[variant]


# ---------------------------------------------------------------- warm kernels
LEAVE_TRACES = '''
import builtins as _b, numpy as _np, os as _os, sys as _sys
_np.LEFT_BY_ANOTHER_STUDENT = True
_b.LEFT_BY_ANOTHER_STUDENT = True
_sys.modules["left_by_another_student"] = _np
_os.environ["LEFT_BY_ANOTHER_STUDENT"] = "1"
for _p in ("left-by-another-student.txt", "../left-by-another-student.txt",
           "/tmp/left-by-another-student.txt", "/dev/shm/left-by-another-student.txt"):
    try:
        open(_p, "w").write("x")
    except OSError:
        pass
''' + planted.OUTPUT_SIZE

LOOK_FOR_TRACES = '''
import builtins as _b, glob as _g, numpy as _np, os as _os, sys as _sys
_seen = [name for name, found in [
    ("numpy", hasattr(_np, "LEFT_BY_ANOTHER_STUDENT")),
    ("builtins", hasattr(_b, "LEFT_BY_ANOTHER_STUDENT")),
    ("sys.modules", "left_by_another_student" in _sys.modules),
    ("environ", "LEFT_BY_ANOTHER_STUDENT" in _os.environ),
    ("files", bool(_g.glob("/tmp/**/left-by-another-student.txt", recursive=True)
                   + _g.glob("/dev/shm/left-by-another-student.txt")
                   + _g.glob("../../../**/left-by-another-student.txt", recursive=True))),
    ("not in its own scratch copy", not (_os.getcwd().endswith(_os.path.join(
        _os.environ.get("STUDENT_HINT", ""), "a1-convolution")) and _os.path.exists("a1-convolution.ipynb"))),
    ("other students' folders", _os.listdir("../..") != [_os.environ.get("STUDENT_HINT", "")]),
] if found]
print("uid", _os.getuid(), "seen", _seen)
''' + planted.OUTPUT_SIZE + '''
if _seen:
    def output_size(n, k, stride=1, padding=0, dilation=1):
        return -1
'''


def test_warm_kernels_are_fresh_for_every_student(tmp_path):
    """One worker, students in turn: each kernel starts clean, in that student's own copy,
    even after a student whose warm kernel was never used (nbgrader refused the notebook)."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    grader("release", "a1-convolution", course=course)
    release = course / "release" / "a1-convolution" / "a1-convolution.ipynb"
    students = ["s0-refused", "s1-leaves", "s2-looks", "s3-leaves", "s4-looks", "s5-looks"]
    for student in students:
        nb = nbformat.read(release, as_version=4)
        if "refused" in student:  # passes the grader's checks, then nbgrader refuses it
            nb.cells.append(nbformat.v4.new_markdown_cell("mine", metadata={"nbgrader": {
                "solution": True, "grade": False, "locked": False, "grade_id": "extra",
                "schema_version": 3}}))
        code = LEAVE_TRACES if "look" not in student else LOOK_FOR_TRACES.replace(
            '_os.environ.get("STUDENT_HINT", "")', repr(student))
        planted._fill(nb, {"output_size": code, "conv2d_forward": planted.CONV_IM2COL,
                           "exercise_sizes": planted.EXERCISE})
        dest = tmp_path / "submissions" / student / "a1-convolution"
        dest.mkdir(parents=True)
        nbformat.write(nb, dest / "a1-convolution.ipynb")
    grader("autograde", "a1-convolution", "--submissions", tmp_path / "submissions", "--workers", "1",
           "--no-progress", *LIMITS, course=course)
    export = rows(grader("export", course=course).stdout)
    assert export["s0-refused"]["status"] == "failed", export["s0-refused"]
    assert "nbgrader could not grade it" in export["s0-refused"]["message"]
    uids = []
    for student in students[1:]:
        assert (export[student]["status"], export[student]["score"]) == ("graded", "13"), \
            export[student]["message"]
        if "looks" in student:
            nb = nbformat.read(course / "autograded" / student / "a1-convolution" / "a1-convolution.ipynb",
                               as_version=4)
            text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
            found = re.search(r"uid (\d+) seen \[\]", text)
            assert found, text
            uids.append(int(found.group(1)))
    if os.geteuid() == 0:  # kernels run as other user ids, and the next one as a different id
        assert all(uid != 0 for uid in uids) and len(set(uids)) == len(uids), uids


def test_instructor_guide_lists_every_assignment_with_its_points(monkeypatch):
    from grader import course

    # The guide describes this repository's assignments, whichever course GRADER_COURSE_DIR names.
    monkeypatch.setattr(course, "COURSE", course.CODE)
    guide = (REPO / "book" / "instructor_guide.md").read_text()
    table = course.points_table().splitlines()
    assert table[0] in guide
    for row in table[2:]:
        assert row in guide, f"book/instructor_guide.md: the assignment table is out of date:\n{row}"
