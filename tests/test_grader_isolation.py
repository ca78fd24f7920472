"""The trust boundary's isolation, tried as a hostile student would (issue 10, items 1-3).

The kernel runs the student's code and is hostile: nothing it can write, bind, patch or
print may decide a score, reach a file outside its scratch folder, or reach another
student.  Every attack here is a submission made from the released a1-convolution notebook
and graded through the command line in a copy of the course (GRADER_COURSE_DIR), as
tests/test_grader.py does; the assertions look at what an instructor sees: the export, the
autograded folder, the files around the course.

1. the results channel: a kernel that writes forged worker replies to every descriptor it
   holds neither moves nor deletes anything, nor shifts a grade onto another student;
2. the allow-list: a kernel sees the runtime (interpreter, virtual environment, system
   libraries) and its own folders, and no copy of the course wherever it lives;
3. only regular files, with one link, within the budget, come back from the scratch folder;
   a submission holding a link or a special file is refused, naming the file.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from planted import a1_convolution as planted  # noqa: E402
from planted import attacks  # noqa: E402
from planted._cli import LIMITS, grader, rows  # noqa: E402

ASSIGNMENT = "a1-convolution"
FULL = planted.FULL


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A course copy with a1-convolution released (copied by each test)."""
    course = tmp_path_factory.mktemp("released") / "course"
    shutil.copytree(REPO / "grader" / "source", course / "source")
    grader("release", ASSIGNMENT, course=course)
    return course


def new_course(released: Path, where: Path) -> Path:
    course = where / "course"
    shutil.copytree(released, course)
    return course


def release_nb(course: Path) -> Path:
    return course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def submit(course: Path, submissions: Path, student: str, cells: dict | None = None) -> Path:
    """submissions/<student>/a1-convolution/a1-convolution.ipynb: a correct submission with
    ``cells`` (grade id -> source) replaced."""
    nb = nbformat.read(release_nb(course), as_version=4)
    planted._fill(nb, {"output_size": planted.OUTPUT_SIZE, "conv2d_forward": planted.CONV_IM2COL,
                       **(cells or {})})
    folder = submissions / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    return folder


def autograde(course: Path, submissions: Path, *extra) -> dict[str, dict]:
    grader("autograde", ASSIGNMENT, "--submissions", submissions, "--no-progress", *LIMITS, *extra,
           course=course)
    return rows(grader("export", course=course).stdout)


def outputs(course: Path, student: str) -> str:
    path = course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def fill(template: str, **values) -> str:
    for key, value in values.items():
        template = template.replace(key, repr(value))
    return template


# ---------------------------------------------------------------- 1. the results channel
KERNEL_PROBE = r'''
import json, os, sys
from pathlib import Path

from jupyter_core.utils import run_sync

from grader.sandbox import SandboxKernelManager

scratch, runtime, report = map(Path, sys.argv[1:4])
km = SandboxKernelManager(runtime_root=str(runtime))
run_sync(km.start_kernel)(cwd=str(scratch), extra_arguments=["--HistoryManager.hist_file=:memory:"])
kc = km.blocking_client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
texts = []
for cell in sys.stdin.read().split("\n# next cell\n"):
    kc.execute_interactive(cell, timeout=60, output_hook=lambda m: texts.append(m["content"].get("text", "")))


def tree(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def targets(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


mine = targets(os.getpid())
kernel = {pid: targets(pid) for pid in tree(km.provisioner.process.pid)}
kc.stop_channels()
run_sync(km.kill_now)()
report.write_text(json.dumps({"texts": texts, "mine": mine, "kernel": kernel}))
print("DONE")
'''


def test_the_kernel_inherits_no_descriptor_of_the_process_that_starts_it(tmp_path):
    """A kernel started by a process whose stdout is a pipe (as a worker's was) holds no
    descriptor of that process: what it writes everywhere never reaches the pipe."""
    scratch, runtime = tmp_path / "scratch", tmp_path / "rt"
    scratch.mkdir()
    runtime.mkdir()
    report = tmp_path / "report.json"
    attack = fill(attacks.FORGE_REPLY, STUDENT="me", POINTS=[], VICTIM_MOVE="/nonexistent",
                  VICTIM_DELETE="/nonexistent")
    proc = subprocess.run([sys.executable, "-c", KERNEL_PROBE, scratch, runtime, report],
                          input=attack, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "DONE\n", proc.stdout[:2000]
    data = json.loads(report.read_text())
    listing = "".join(data["texts"])
    assert "descriptors:" in listing, listing
    pipes = {t for t in data["mine"].values() if t.startswith("pipe:")}
    for pid, fds in data["kernel"].items():
        shared = {fd: t for fd, t in fds.items() if t in pipes}
        assert not shared, (pid, shared, fds)
        # the processes bubblewrap starts hold the standard descriptors and nothing of ours
        assert not any(t.startswith(str(tmp_path)) and "rt" not in t and "scratch" not in t
                       for t in fds.values()), fds


def test_a_flood_of_output_stops_in_the_kernel(tmp_path):
    """150 prints of 1 MiB: the kernel sends 16 MiB of them, so a grader slower than the flood
    (a loaded machine) no longer lets it queue in the kernel's memory (it raised MemoryError).
    The cap is per cell: the next cell's output is sent whole."""
    scratch, runtime = tmp_path / "scratch", tmp_path / "rt"
    scratch.mkdir()
    runtime.mkdir()
    report = tmp_path / "report.json"
    flood = "for _ in range(150):\n    print('x' * 2**20, flush=True)\nprint('done', file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", KERNEL_PROBE, scratch, runtime, report],
                          input="import sys\n" + flood + "\n# next cell\nprint('after')",
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = [t for t in json.loads(report.read_text())["texts"] if t]  # stream messages
    assert texts[-1] == "after\n", texts[-1][:100]  # the next cell prints in full
    flooded = sum(map(len, texts[:-1]))
    assert 2**20 < flooded <= 16 * 2**20 + len("done\n"), flooded
    assert texts[-2] == "done\n"  # another stream's output goes on


def test_the_kernels_memory_backed_folders_are_bounded(tmp_path):
    """/tmp and /dev/shm are tmpfs, held in the host's memory outside the kernel's own limit: a
    kernel filling them (600 MiB each, in files under the file-size limit) stops at their size."""
    scratch, runtime = tmp_path / "scratch", tmp_path / "rt"
    scratch.mkdir()
    runtime.mkdir()
    report = tmp_path / "report.json"
    fill_up = """import os
for where in ("/tmp", "/dev/shm"):
    written = 0
    try:
        for i in range(3):
            with open(f"{where}/f{i}", "wb") as f:
                for _ in range(200):
                    f.write(b"x" * 2**20)
                    written += 2**20
    except OSError as exc:
        print(where, "stopped", exc.errno, written // 2**20)
    else:
        print(where, "wrote", written // 2**20)
    for i in range(3):
        if os.path.exists(f"{where}/f{i}"):
            os.remove(f"{where}/f{i}")"""
    proc = subprocess.run([sys.executable, "-c", KERNEL_PROBE, scratch, runtime, report],
                          input=fill_up, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = "".join(json.loads(report.read_text())["texts"]).split()
    for where in ("/tmp", "/dev/shm"):
        at = said.index(where)
        assert said[at + 1:at + 3] == ["stopped", "28"], said  # ENOSPC: the folder is full
        assert int(said[at + 3]) <= 256, said


def test_a_forged_reply_decides_nothing(released, tmp_path):
    """A submission writes forged worker replies (full marks for itself, a folder outside the
    course to move into the course and another to delete) to every descriptor it holds.
    Nothing moves or disappears, and every student keeps the grade of their own work."""
    course = new_course(released, tmp_path)
    subs = tmp_path / "submissions"
    victim_delete, victim_move = tmp_path / "victim-delete", tmp_path / "victim-move"
    for victim in (victim_delete, victim_move):
        victim.mkdir()
        (victim / "precious.txt").write_text("keep me")
    nb = nbformat.read(release_nb(course), as_version=4)
    points = [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"]["points"]) for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")]
    submit(course, subs, "a-honest")
    submit(course, subs, "b-forger", {
        "output_size": fill(attacks.FORGE_REPLY, STUDENT="b-forger", POINTS=points,
                            VICTIM_MOVE=str(victim_move), VICTIM_DELETE=str(victim_delete)),
        "conv2d_forward": "raise NotImplementedError()"})
    submit(course, subs, "c-honest")
    submit(course, subs, "d-flipped", {"conv2d_forward": planted.CONV_FLIPPED})
    submit(course, subs, "e-honest")
    export = autograde(course, subs, "--workers", "1")
    assert (victim_delete / "precious.txt").read_text() == "keep me"
    assert (victim_move / "precious.txt").read_text() == "keep me"
    expected = {"a-honest": FULL, "b-forger": 3 + 2, "c-honest": FULL,
                "d-flipped": planted.EXPECTED["flipped-kernel"][0], "e-honest": FULL}
    got = {s: (export[s]["status"], export[s]["score"]) for s in expected}
    assert got == {s: ("graded", str(score)) for s, score in expected.items()}, export
    text = outputs(course, "b-forger")
    assert "descriptors:" in text
    assert "worker-" not in text, text  # the kernel holds nothing of the worker's, not even its log


def test_the_parent_takes_only_its_own_reply_and_only_its_own_folders(tmp_path):
    """The parent's side of the channel: a reply of another job (token, student,
    assignment) is not taken, and a folder named in a reply is used only if it is a real
    ``k<n>`` folder of that worker, with no link on the way."""
    from grader import replies

    job = replies.Job("ann")
    good = {"ok": True, "student": "ann", "assignment": "a1", "token": job.token}
    assert replies.parse_reply(json.dumps(good), job, "a1") == (good, False)
    for bad in ({**good, "token": "0" * 32}, {**good, "student": "bob"}, {**good, "assignment": "a2"},
                {k: v for k, v in good.items() if k != "token"}, [good]):
        reply, broken = replies.parse_reply(json.dumps(bad), job, "a1")
        assert broken and not reply["ok"], bad
    assert replies.parse_reply("not json", job, "a1")[1]

    home = tmp_path / "run" / "w0"
    (home / "k1").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", home / "k2")
    assert replies.job_folder(str(home / "k1"), home) == home / "k1"
    for path in [str(tmp_path / "elsewhere"), str(home / "k2"), str(home / "k1" / ".." / "k1"),
                 str(home), "/", "k1", str(home / "k9"), str(home / "x1"), None, 7]:
        assert replies.job_folder(path, home) is None, path


# ---------------------------------------------------------------- 2. the allow-list
def _ancestors(*paths) -> set[str]:
    out = set()
    for p in paths:
        p = Path(os.path.realpath(p))
        out |= {str(q) for q in [p, *p.parents]}
    return out


def test_the_kernel_sees_only_the_allow_list(released, tmp_path):
    """Copies of the course under /var/tmp and /opt, the checkout (its history, tests,
    answer keys), the course copy being graded, home folders, /work, /tmp, other submissions:
    none is visible.  Honest work still runs (NumPy, matplotlib saving a figure)."""
    course = new_course(released, tmp_path)
    subs = tmp_path / "submissions"
    tag = f"grader-iso-{uuid.uuid4().hex[:8]}"
    copies = [Path("/var/tmp") / tag, Path("/opt") / tag]
    try:
        for copy in copies:
            shutil.copytree(REPO / "grader" / "source", copy / "course" / "source")
            os.chmod(copy, 0o755)
        patterns = [f"{c}/course/source/*/*.ipynb" for c in copies] + [
            f"{REPO}/.git/HEAD", f"{REPO}/README.md", f"{REPO}/grader/source/*/*.ipynb",
            f"{REPO}/tests/*.py", f"{REPO}/tests/planted/*.py", f"{course}/source/*/*.ipynb",
            f"{course}/gradebook.db", f"{subs}/*/*/*.ipynb", "/etc/passwd", "/etc/hostname",
            "/work/*/*.md", "/root/.*", "/home/*/*"]
        from grader import sandbox

        allowed = sorted(_ancestors(REPO / "cnnlib", sys.prefix, sys.base_prefix, course / ".work",
                                    Path(tempfile.gettempdir()) / f"grader-rt-{os.geteuid()}",
                                    *sandbox.SYSTEM_FILES))
        snoop = fill(attacks.SNOOP, PATTERNS=patterns, ALLOWED=allowed, REPO=str(REPO))
        submit(course, subs, "snoop", {"output_size": snoop,
                                       "exercise_sizes": planted.EXERCISE + attacks.HONEST_NEEDS})
        submit(course, subs, "other-student")
        export = autograde(course, subs)
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
    text = outputs(course, "snoop")
    assert "seen: []" in text, text
    assert "runtime ok" in text and "True" in text, text
    assert (export["snoop"]["status"], export["snoop"]["score"]) == ("graded", str(FULL)), export["snoop"]
    assert export["other-student"]["score"] == str(FULL)


# ---------------------------------------------------------------- 3. what comes back
def _tree(folder: Path) -> dict[str, os.stat_result]:
    found = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(base) / name
            found[str(path.relative_to(folder))] = path.lstat()
    return found


@pytest.fixture(scope="module")
def littered(released, tmp_path_factory):
    """One class: an honest student, submissions holding links and special files, and kernels
    that litter their scratch folder."""
    root = tmp_path_factory.mktemp("littered")
    course = new_course(released, root)
    subs = root / "submissions"
    outside = root / "outside"
    outside.mkdir()
    submit(course, subs, "honest")
    # a submitted notebook that is a link to the answer key
    folder = subs / "link-notebook" / ASSIGNMENT
    folder.mkdir(parents=True)
    os.symlink(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", folder / f"{ASSIGNMENT}.ipynb")
    # an honest notebook with links to the gradebook and the answer keys next to it
    folder = submit(course, subs, "link-gradebook")
    os.symlink(course / "gradebook.db", folder / "gradebook.db")
    os.symlink(course / "source", folder / "solutions")
    # a hard link to the gradebook (the grader runs as root: a submission folder prepared by
    # anyone with access to the machine can hold one)
    folder = submit(course, subs, "hard-link")
    os.link(course / "gradebook.db", folder / "data.db")
    # a named pipe: copying it would block
    folder = submit(course, subs, "fifo")
    os.mkfifo(folder / "pipe")
    # a student folder that is a link to another student's
    os.symlink(subs / "honest", subs / "link-student")
    # sparse data, 200 MB by its size
    folder = submit(course, subs, "sparse-submission")
    with open(folder / "data.bin", "wb") as fh:
        fh.truncate(200 * 2**20)
    # kernels that litter their scratch folder
    links = [("gradebook.db", str(course / "gradebook.db")), ("solutions", str(course / "source")),
             ("passwd", "/etc/passwd")]
    submit(course, subs, "litter", {"output_size": fill(attacks.LITTER, LINKS=links)})
    target = outside / "written-by-nbgrader.ipynb"
    submit(course, subs, "notebook-link", {
        "exercise_sizes": planted.EXERCISE + fill(attacks.NOTEBOOK_LINK, OUTSIDE=str(target))})
    # a kernel that rewrites the submission time in its scratch folder
    folder = submit(course, subs, "rewrite-time", {
        "output_size": "open('timestamp.txt', 'w').write('2000-01-01 00:00:00.000000 UTC')\n"
                       + planted.OUTPUT_SIZE})
    (folder / "timestamp.txt").write_text(SUBMITTED_AT)
    export = autograde(course, subs, "--workers", "2")
    return {"course": course, "subs": subs, "export": export, "outside": outside, "target": target}


SUBMITTED_AT = "2026-12-01 10:00:00.000000 UTC"


def test_the_submission_time_kept_is_the_submissions(littered):
    """The graded folder keeps the submission's timestamp.txt, not what the kernel wrote there."""
    row = littered["export"]["rewrite-time"]
    assert row["status"] == "graded" and row["submitted_at"].startswith("2026-12-01"), row
    kept = littered["course"] / "autograded" / "rewrite-time" / ASSIGNMENT / "timestamp.txt"
    assert kept.read_text() == SUBMITTED_AT


REFUSED = {
    "link-notebook": "a1-convolution/a1-convolution.ipynb is a symbolic link",
    "link-gradebook": "a1-convolution/gradebook.db is a symbolic link",
    "hard-link": "a1-convolution/data.db has other hard links",
    "fifo": "a1-convolution/pipe is not a regular file",
    "link-student": "link-student is a symbolic link",
    "sparse-submission": "larger than",
}


@pytest.mark.parametrize("student", sorted(REFUSED))
def test_a_submission_holding_a_link_or_special_file_is_refused(littered, student):
    if student == "link-student" and student not in littered["export"]:
        return  # not taken for a student at all: fine too
    row = littered["export"][student]
    assert row["status"] == "failed", row
    assert REFUSED[student] in row["message"], row
    assert not (littered["course"] / "autograded" / student).exists()


def test_the_honest_student_is_graded_as_before(littered):
    assert littered["export"]["honest"]["status"] == "graded"
    assert littered["export"]["honest"]["score"] == str(FULL)


def test_nothing_but_regular_files_in_budget_comes_back_from_the_scratch_folder(littered):
    from grader import crossing

    course = littered["course"]
    row = littered["export"]["litter"]
    assert (row["status"], row["score"]) == ("graded", str(FULL)), row
    assert "not kept" in row["message"], row
    found = _tree(course / "autograded")
    assert found, "nothing was autograded"
    for name, st in found.items():
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode), name
        assert stat.S_ISDIR(st.st_mode) or st.st_nlink == 1, name
    mine = _tree(course / "autograded" / "litter")
    files = [st for st in mine.values() if stat.S_ISREG(st.st_mode)]
    assert len(files) <= crossing.SCRATCH_BUDGET.files
    assert sum(st.st_size for st in files) <= crossing.SCRATCH_BUDGET.bytes
    assert f"litter/{ASSIGNMENT}/{ASSIGNMENT}.ipynb" in found
    assert f"litter/{ASSIGNMENT}/notes.txt" in found  # what the kernel wrote, if it fits, comes back
    assert not any(w in k for k in mine for w in ("gradebook", "solutions", "passwd", "link", "pipe",
                                                  "sparse", "mine")), sorted(mine)
    assert "sparse-0.bin" in row["message"] and "symbolic link" in row["message"], row
    assert (course / "gradebook.db").is_file() and (course / "source" / ASSIGNMENT).is_dir()


def test_a_notebook_replaced_by_a_link_is_not_followed(littered):
    row = littered["export"]["notebook-link"]
    assert (row["status"], row["score"]) == ("graded", str(FULL)), row
    assert not littered["target"].exists() and not list(littered["outside"].iterdir())
    nb = littered["course"] / "autograded" / "notebook-link" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert nb.is_file() and not nb.is_symlink()
    assert "the notebook is now a link" in nb.read_text()
