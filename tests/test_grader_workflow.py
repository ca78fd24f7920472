"""The instructor's workflow through the command line: collect an LMS zip with a roster,
due dates and late penalties, the exports (CSV, per test with the failing reason, Canvas),
typos that fail loudly, feedback for failed students and nothing but the reports.

One small class (three students from a Canvas zip, one who handed nothing in) is graded
once, in a copy of the course; the tests that change it work on further copies.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from planted import a1_convolution as planted  # noqa: E402

A1 = "a1-convolution"
LIMITS = ["--cell-timeout", "4", "--notebook-budget", "30", "--memory-mb", "1024", "--workers", "2",
          "--no-progress"]
ROSTER = """student_id,name,canvas_id,sis_user_id,sis_login_id,section,email
ada,Ada Lovelace,1001,S-1,ada@uni,Sec A,ada@uni.example
grace,"Hopper, Grace",1002,S-2,grace@uni,Sec A,
alan,Alan Turing,1003,S-3,alan@uni,Sec B,
charles,Charles Babbage,1004,S-4,charles@uni,Sec B,
"""


def grader(*args, course: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRADER_COURSE_DIR=str(course), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], env=env, cwd=course,
                          capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def table(text: str, key=("student_id",)) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r
            for r in csv.DictReader(io.StringIO(text))}


def member(name: str, data: bytes, when=(2026, 1, 10, 12, 0, 0), mode: int | None = None):
    info = zipfile.ZipInfo(name, when)
    if mode is not None:
        info.external_attr = mode << 16
    return info, data


def write_zip(path: Path, members) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def copy_course(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".work"))
    return dest


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow")
    course = root / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    release = ok(grader("release", A1, "--due", "2026-01-11T00:00", course=course))
    nb = course / "release" / A1 / f"{A1}.ipynb"
    made = root / "made"
    notebooks = {v: planted.make(nb, made / v, v).read_bytes()
                 for v in ("correct-loops", "forgot-stride", "not-json")}
    roster = root / "roster.csv"
    roster.write_text(ROSTER)
    canvas = write_zip(root / "submissions.zip", [
        member(f"lovelaceada_1001_5001_{A1}.ipynb", notebooks["correct-loops"]),
        # late, and re-submitted (Canvas appends -1 to the file name)
        member(f"hoppergrace_LATE_1002_5002_{A1}-1.ipynb", notebooks["forgot-stride"],
               when=(2026, 1, 12, 8, 0, 0)),
        member(f"turingalan_1003_5003_{A1}.ipynb", notebooks["not-json"]),
        member(f"nobodyx_9999_5009_{A1}.ipynb", notebooks["correct-loops"]),
    ])
    collect = grader("collect", A1, canvas, "--roster", roster, course=course)
    run = ok(grader("autograde", A1, *LIMITS, course=course))
    export = ok(grader("export", course=course)).stdout
    return {"root": root, "course": course, "roster": roster, "zip": canvas, "notebooks": notebooks,
            "release": release, "collect": collect, "run": run, "export": table(export)}


# ---------------------------------------------------------------- collect
def test_collect_places_each_file_by_the_roster_and_names_the_unknown(cls):
    proc, sub = cls["collect"], cls["course"] / "submitted"
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one file could not be placed
    assert "nobodyx" in proc.stderr and "not in the roster" in proc.stderr
    assert sorted(p.name for p in sub.iterdir()) == ["ada", "alan", "grace"]
    for student, variant in [("ada", "correct-loops"), ("grace", "forgot-stride"), ("alan", "not-json")]:
        assert (sub / student / A1 / f"{A1}.ipynb").read_bytes() == cls["notebooks"][variant]
    assert (sub / "grace" / A1 / "timestamp.txt").read_text().strip() == "2026-01-12 08:00:00"
    assert (sub / "ada" / A1 / "timestamp.txt").read_text().strip() == "2026-01-10 12:00:00"
    assert "grace" in proc.stdout and "LATE" in proc.stdout


def test_collect_never_overwrites_silently(cls, tmp_path):
    course = copy_course(cls["course"], tmp_path / "course")
    again = grader("collect", A1, cls["zip"], "--roster", cls["roster"], course=course)
    assert "unchanged ada" in again.stdout and "placed ada" not in again.stdout
    newer = write_zip(tmp_path / "newer.zip", [
        member(f"lovelaceada_1001_6001_{A1}.ipynb", cls["notebooks"]["forgot-stride"],
               when=(2026, 1, 10, 18, 0, 0))])
    refused = grader("collect", A1, newer, "--roster", cls["roster"], course=course)
    assert refused.returncode != 0 and "--replace" in refused.stderr and "ada" in refused.stderr
    ada = course / "submitted" / "ada" / A1 / f"{A1}.ipynb"
    assert ada.read_bytes() == cls["notebooks"]["correct-loops"]
    replaced = ok(grader("collect", A1, newer, "--roster", cls["roster"], "--replace", course=course))
    assert f"replaced ada/{A1}" in replaced.stdout
    assert ada.read_bytes() == cls["notebooks"]["forgot-stride"]


@pytest.mark.parametrize("attack", ["symlink", "dotdot", "nested-symlink", "absolute"])
def test_collect_refuses_links_and_paths_out_of_the_folder(cls, tmp_path, attack):
    course = copy_course(cls["course"], tmp_path / "course")
    nb = cls["notebooks"]["correct-loops"]
    if attack == "symlink":
        members = [member(f"lovelaceada_1001_5001_{A1}.ipynb", b"../../gradebook.db",
                          mode=stat.S_IFLNK | 0o777)]
    elif attack == "dotdot":
        members = [member(f"../../lovelaceada_1001_5001_{A1}.ipynb", nb)]
    elif attack == "absolute":
        members = [member(f"/tmp/lovelaceada_1001_5001_{A1}.ipynb", nb)]
    else:
        inner = io.BytesIO()
        write_zip(inner, [member(f"{A1}.ipynb", str(course / "source").encode(), mode=stat.S_IFLNK | 0o777)])
        members = [member("lovelaceada_1001_5001_work.zip", inner.getvalue())]
    members.append(member(f"hoppergrace_1002_5002_{A1}.ipynb", nb))
    before = sorted(str(p) for p in course.rglob("*"))
    proc = grader("collect", A1, write_zip(tmp_path / "evil.zip", members), "--roster", cls["roster"],
                  course=course)
    assert proc.returncode != 0
    assert ("symbolic link" if "symlink" in attack else
            "leaves its folder" if attack == "dotdot" else "absolute path") in proc.stderr
    assert "nothing was unpacked" in proc.stderr
    assert sorted(str(p) for p in course.rglob("*")) == before  # not even grace was placed


def test_collect_moodle_folders(cls, tmp_path):
    course = copy_course(cls["course"], tmp_path / "course")
    shutil.rmtree(course / "submitted")
    nb = cls["notebooks"]["correct-loops"]
    moodle = write_zip(tmp_path / "moodle.zip", [
        member(f"Ada Lovelace_301_assignsubmission_file_/{A1}.ipynb", nb),
        member(f"Grace Hopper_302_assignsubmission_file_/{A1}.ipynb", nb),
        member("Alan Turing_303_assignsubmission_onlinetext_/onlinetext.html", b"<p>hi</p>"),
    ])
    proc = grader("collect", A1, moodle, "--roster", cls["roster"], course=course)
    assert proc.returncode == 1 and "onlinetext.html: not a notebook" in proc.stderr, proc.stderr
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["ada", "grace"]
    assert (course / "submitted" / "grace" / A1 / f"{A1}.ipynb").read_bytes() == nb


def test_collect_a_zip_a_student_handed_in(cls, tmp_path):
    course = copy_course(cls["course"], tmp_path / "course")
    shutil.rmtree(course / "submitted")
    inner = io.BytesIO()
    write_zip(inner, [member(f"{A1}.ipynb", cls["notebooks"]["correct-loops"])])
    outer = write_zip(tmp_path / "outer.zip", [
        member("turingalan_1003_7003_mywork.zip", inner.getvalue(), when=(2026, 1, 10, 13, 0, 0))])
    ok(grader("collect", A1, outer, "--roster", cls["roster"], course=course))
    placed = course / "submitted" / "alan" / A1
    assert (placed / f"{A1}.ipynb").read_bytes() == cls["notebooks"]["correct-loops"]
    assert (placed / "timestamp.txt").read_text().strip() == "2026-01-10 13:00:00"


# ---------------------------------------------------------------- due date, export
def test_due_date_and_late_penalty_in_the_export(cls):
    assert "due 2026-01-11 00:00 UTC" in cls["release"].stdout
    ex = cls["export"]
    assert set(ex) == {"ada", "alan", "charles", "grace"}
    ada, grace = ex["ada"], ex["grace"]
    assert (ada["status"], ada["score"], ada["late_penalty"], ada["hours_late"]) == ("graded", "13", "0", "0")
    # 32 h late: two started days at 10% of the 7 points autograded
    assert (grace["status"], grace["hours_late"], grace["late_penalty"], grace["score"]) == \
        ("graded", "32.0", "1.4", "5.6"), grace
    assert "late by 32.0 h" in grace["message"]
    assert grace["due"] == "2026-01-11 00:00 UTC" and grace["submitted_at"] == "2026-01-12 08:00 UTC"


def test_failed_and_missing_are_never_graded(cls):
    ex = cls["export"]
    assert ex["alan"]["status"] == "failed" and ex["alan"]["score"] == ""
    assert "not valid JSON" in ex["alan"]["message"]
    assert (ex["charles"]["status"], ex["charles"]["score"], ex["charles"]["message"]) == \
        ("missing", "", "no submission")


def test_by_test_export_says_why_each_test_failed(cls):
    text = ok(grader("export", "--by-test", course=cls["course"])).stdout
    assert text.splitlines()[0] == "student_id,assignment,notebook,grade_id,score,max_score,message"
    rows = table(text, key=("student_id", "grade_id"))
    shapes = rows[("grace", "test_conv2d_shapes")]
    assert shapes["score"] == "0"
    assert shapes["message"].startswith("GradingError: conv2d_forward(")
    assert "expected (2, 4, 3, 4)" in shapes["message"] and "\n" not in shapes["message"]
    assert "the stride was ignored" in rows[("grace", "test_conv2d_hidden_stride_padding")]["message"]
    assert rows[("grace", "test_output_size")]["message"] == ""  # passed
    assert rows[("ada", "answer_rounding")]["message"] == "to grade by hand"
    assert not any(k[0] in ("alan", "charles") for k in rows)


def test_canvas_export(cls, tmp_path):
    proc = ok(grader("export", "--format", "canvas", "--roster", cls["roster"], course=cls["course"]))
    lines = list(csv.reader(io.StringIO(proc.stdout)))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A1]
    assert lines[1] == ["Points Possible", "", "", "", "", "15"]
    body = {r[1]: r for r in lines[2:]}
    assert body["1001"] == ["Lovelace, Ada", "1001", "S-1", "ada@uni", "Sec A", "13"]
    assert body["1002"][0] == "Hopper, Grace" and body["1002"][-1] == "5.6"
    assert body["1003"][-1] == "" and body["1004"][-1] == ""  # failed, missing: no grade
    missing_roster = grader("export", "--format", "canvas", course=cls["course"])
    assert missing_roster.returncode == 2 and "--roster" in missing_roster.stderr
    short = tmp_path / "short.csv"
    short.write_text("\n".join(ROSTER.splitlines()[:2]) + "\n")
    partial = grader("export", "--format", "canvas", "--roster", short, course=cls["course"])
    assert partial.returncode == 1 and "alan, charles, grace" in partial.stderr


def test_export_follows_the_gradebook_and_one_submissions_folder(cls, tmp_path):
    from nbgrader.api import Gradebook

    course = copy_course(cls["course"], tmp_path / "course")
    other = tmp_path / "elsewhere"
    planted.make(course / "release" / A1 / f"{A1}.ipynb", other / "zoe" / A1, "correct-im2col")
    run = ok(grader("autograde", A1, "--submissions", other, *LIMITS, course=course))
    assert "replaced by this run" in run.stderr
    ex = table(ok(grader("export", course=course)).stdout)
    assert (ex["zoe"]["status"], ex["zoe"]["score"]) == ("graded", "13"), ex["zoe"]
    for student in ("ada", "grace", "alan"):  # graded from the other folder: not mixed in
        assert ex[student]["status"] == "missing" and ex[student]["score"] == "", ex[student]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "cnn-course") as gb:
        gb.remove_student("zoe")
    ex = table(ok(grader("export", course=course)).stdout)
    assert "zoe" not in ex and "ada" in ex


# ---------------------------------------------------------------- typos
TYPOS = {
    "autograde-student": (["autograde", A1, "--student", "zed", "--no-progress"], ["'zed'", "ada, alan, grace"]),
    "autograde-assignment": (["autograde", "a9"], ["'a9'", A1]),
    "autograde-folder": (["autograde", A1, "--submissions", "/nope"], ["/nope"]),
    "feedback-assignment": (["feedback", "a9"], ["'a9'", A1]),
    "feedback-student": (["feedback", A1, "--student", "zed"], ["'zed'", "ada, alan, grace"]),
    "export-assignment": (["export", "--assignment", "a9"], ["'a9'", A1]),
    "release-assignment": (["release", "a9"], ["'a9'", "a6-saturation"]),
    "collect-assignment": (["collect", "a9", "x.zip", "--roster", "r.csv"], ["'a9'", A1]),
    "collect-zip": (["collect", A1, "/nope.zip", "--roster", "r.csv"], ["/nope.zip"]),
}


@pytest.mark.parametrize("case", sorted(TYPOS))
def test_typos_fail_loudly(cls, case):
    args, words = TYPOS[case]
    proc = grader(*args, course=cls["course"])
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    for word in words:
        assert word in proc.stderr, proc.stderr


# ---------------------------------------------------------------- feedback
def test_feedback_reports_failures_and_copies_nothing_but_reports(cls, tmp_path):
    course = copy_course(cls["course"], tmp_path / "course")
    planted_dir = course / "autograded" / "ada" / A1
    (planted_dir / "solution.ipynb").symlink_to(course / "source" / A1 / f"{A1}.ipynb")
    (planted_dir / "gradebook.db").symlink_to(course / "gradebook.db")
    (planted_dir / "secrets").symlink_to(course / "source")
    for i in range(3):
        with open(planted_dir / f"sparse{i}.bin", "wb") as f:
            f.truncate(2 * 1024**3)
    proc = ok(grader("feedback", A1, course=course))
    assert "feedback for 2 graded students and 1 whose grading failed" in proc.stdout
    files = [p for p in (course / "feedback").rglob("*")]
    assert not any(p.is_symlink() for p in files)
    names = sorted(str(p.relative_to(course / "feedback")) for p in files if p.is_file())
    assert names == [f"ada/{A1}/{A1}.html", f"ada/{A1}/mathjax/tex-svg.js", f"alan/{A1}/{A1}.html",
                     f"grace/{A1}/{A1}.html", f"grace/{A1}/mathjax/tex-svg.js"]
    assert sum(p.stat().st_size for p in files if p.is_file()) < 20 * 1024**2
    failed = (course / "feedback" / "alan" / A1 / f"{A1}.html").read_text()
    assert "could not be graded" in failed and "not valid JSON" in failed
    assert "BEGIN SOLUTION" not in (course / "feedback" / "ada" / A1 / f"{A1}.html").read_text()
