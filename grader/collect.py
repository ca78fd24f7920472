"""Submissions in: the zips of submissions that Canvas or Moodle hand out.

``collect`` takes the zip of submissions that Canvas or Moodle lets an instructor
download and lays it out as ``submitted/<student>/<assignment>/<notebook>.ipynb``
with nbgrader's own zip_collect machinery (``ZipCollectApp`` with its
``ExtractorPlugin`` and a ``FileNameCollectorPlugin`` whose named regexp matches the
LMS's file names).  The LMS names a file after the student's name and LMS id; the
roster CSV maps them to the course's student ids (the folder names).

Before nbgrader unpacks anything, every member of the zip (and of any zip inside it)
is checked: a symbolic link, an absolute path or a path that leaves its folder
(``../``) refuses the whole zip, as does an archive that would unpack to more than
``MAX_BYTES`` or ``MAX_FILES``.

The roster is read by grader/roster.py, due dates and the late penalty are grader/due.py.
"""
from __future__ import annotations

import datetime as dt
import filecmp
import io
import logging
import os
import re
import shutil
import stat
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Dict, Enum, Unicode

from . import course
from .due import course_timezone
from .roster import CollectError, Student, name_keys, plain_name, read_roster  # noqa: F401 (CollectError: the commands catch it here)

MAX_BYTES = 2 * 1024**3   # an LMS zip that unpacks to more than this is refused
MAX_FILES = 20_000

# The LMSs' file-naming schemes, as nbgrader named regexps (matched against the path of
# each unpacked file, relative to the folder the zip was unpacked into).
REGEXPS = {
    # Canvas: lastfirst_[LATE_]<canvas user id>_<submission id>_<file name>
    # (a zip the student handed in is unpacked by nbgrader into a folder of that name)
    "canvas": r"^(?:.*/)?(?P<lms_name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<lms_id>\d+)_(?P<submission_id>\d+)"
              r"_(?:[^/]*/)*(?P<file_id>[^/]+)$",
    # Moodle: Full Name_<participant id>_assignsubmission_file_/<file name>
    # (or flat: Full Name_<id>_assignsubmission_file_<file name>)
    "moodle": r"^(?:.*/)?(?P<lms_name>[^/_]+(?:_[^/_]+)*?)_(?P<lms_id>\d+)_assignsubmission_file_/?"
              r"(?:.*/)?(?P<file_id>[^/]+)$",
}


# ---------------------------------------------------------------- checking the zip
def check_archive(path: Path) -> None:
    """Refuse a zip (or a zip inside it) with a symbolic link, a path outside its folder,
    or more than MAX_BYTES / MAX_FILES once unpacked."""
    totals = {"bytes": 0, "files": 0}
    try:
        with zipfile.ZipFile(path) as zf:
            _check_zip(zf, Path(path).name, totals)
    except zipfile.BadZipFile as exc:
        raise CollectError(f"{path} is not a zip file ({exc})")


def _unsafe_name(name: str) -> str | None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        return "a path that leaves its folder (..)"
    return None


def _check_zip(zf: zipfile.ZipFile, where: str, totals: dict) -> None:
    for info in zf.infolist():
        what = f"{where}: member {info.filename!r}"
        why = _unsafe_name(info.filename)
        if why:
            raise CollectError(f"{what} is {why}; refusing the whole zip, nothing was unpacked")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise CollectError(f"{what} is a symbolic link; refusing the whole zip, nothing was unpacked")
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
            raise CollectError(f"{what} is not a regular file; refusing the whole zip")
        totals["bytes"] += info.file_size
        totals["files"] += 1
        if totals["bytes"] > MAX_BYTES or totals["files"] > MAX_FILES:
            raise CollectError(f"{where} unpacks to more than {MAX_BYTES >> 20} MB or {MAX_FILES} "
                               "files; refusing it")
        lower = info.filename.lower()
        if lower.endswith(".zip"):
            with zf.open(info) as inner:
                data = io.BytesIO(inner.read())
            try:
                with zipfile.ZipFile(data) as nested:
                    _check_zip(nested, f"{where}/{info.filename}", totals)
            except zipfile.BadZipFile:
                raise CollectError(f"{what} is not a valid zip file")
        elif lower.endswith((".gz", ".tgz", ".tar")):
            with zf.open(info) as inner:
                data = io.BytesIO(inner.read())
            _check_tar(data, f"{where}/{info.filename}", totals)


def _check_tar(data: io.BytesIO, where: str, totals: dict) -> None:
    try:
        tf = tarfile.open(fileobj=data)
    except tarfile.TarError:
        return  # a plain .gz file: nbgrader's unzip refuses it
    with tf:
        for member in tf.getmembers():
            what = f"{where}: member {member.name!r}"
            why = _unsafe_name(member.name)
            if why:
                raise CollectError(f"{what} is {why}; refusing the whole zip, nothing was unpacked")
            if member.issym() or member.islnk():
                raise CollectError(f"{what} is a link; refusing the whole zip, nothing was unpacked")
            if not (member.isfile() or member.isdir()):
                raise CollectError(f"{what} is not a regular file; refusing the whole zip")
            totals["bytes"] += member.size
            totals["files"] += 1
            if totals["bytes"] > MAX_BYTES or totals["files"] > MAX_FILES:
                raise CollectError(f"{where} unpacks to more than {MAX_BYTES >> 20} MB or "
                                   f"{MAX_FILES} files; refusing it")


def detect_lms(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if any("_assignsubmission_" in n for n in names):
        return "moodle"
    if any(re.match(REGEXPS["canvas"], n) for n in names):
        return "canvas"
    raise CollectError(f"{path}: neither Canvas nor Moodle file names (e.g. {names[:3]}); "
                       "pass --lms canvas or --lms moodle")


# ---------------------------------------------------------------- nbgrader's collector plugin
class LmsCollector(FileNameCollectorPlugin):
    """nbgrader's file-name collector with the LMS's named regexp; maps the LMS's name
    and id of each file to the roster's student id, and records what it could not place."""

    lms = Enum(["canvas", "moodle"], "canvas").tag(config=True)
    extracted = Unicode("", help="the folder the zip was unpacked into").tag(config=True)
    roster_file = Unicode("").tag(config=True)
    released = Unicode("", help="the assignment's released folder").tag(config=True)
    zip_times = Dict(help="unpacked path (relative) -> ISO time of the zip member").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.named_regexp = REGEXPS[self.lms]
        self.skipped: dict[str, str] = {}   # file -> why it was not placed
        self.matched: dict[str, dict] = {}  # file -> what was read from its name
        roster = read_roster(Path(self.roster_file))
        self.by_id: dict[str, Student] = {}
        self.by_name: dict[str, list[Student]] = {}
        for s in roster:
            lms_id = s.canvas_id if self.lms == "canvas" else s.moodle_id
            if lms_id:
                self.by_id[lms_id] = s
            for key in name_keys(s.name):
                self.by_name.setdefault(key, []).append(s)
        self.notebooks = {p.name for p in Path(self.released).glob("*.ipynb")}
        self.folder_times = sorted(((k, t) for k, t in self.zip_times.items() if k.endswith("/")),
                                   key=lambda kt: -len(kt[0]))

    def _who(self, name: str, lms_id: str) -> Student | str:
        if lms_id in self.by_id:
            return self.by_id[lms_id]
        hits = {s.id: s for s in self.by_name.get(plain_name(name), [])}
        if len(hits) == 1:
            return next(iter(hits.values()))
        if hits:
            return f"{name!r} matches several students of the roster: {', '.join(sorted(hits))}"
        id_col = "canvas_id" if self.lms == "canvas" else "moodle_id"
        return f"{name!r} ({self.lms} id {lms_id}) is not in the roster (by name or {id_col})"

    def collect(self, submitted_file: str):
        rel = os.path.relpath(submitted_file, self.extracted)
        if os.path.islink(submitted_file) or not os.path.isfile(submitted_file):
            self.skipped[rel] = "not a regular file"
            return None
        if rel.lower().endswith(".zip") and os.path.isdir(submitted_file[:-4]):
            return None  # a zip inside the zip: nbgrader unpacked it next to itself
        if os.path.splitext(rel)[1] not in self.valid_ext:
            self.skipped[rel] = "not a notebook"
            return None
        match = re.match(self.named_regexp, rel.replace(os.sep, "/"))
        if not match:
            self.skipped[rel] = f"the name does not follow {self.lms.capitalize()}'s scheme"
            return None
        info = match.groupdict()
        file_id = info["file_id"]
        stem, ext = os.path.splitext(file_id)
        who = self._who(info["lms_name"], info["lms_id"])
        if isinstance(who, str):
            self.skipped[rel] = who
            return None
        if file_id not in self.notebooks:  # Canvas renames a re-submitted file name-1.ipynb
            base = re.sub(r"-\d+$", "", stem) + ext
            if base in self.notebooks:
                file_id = base
            else:
                self.skipped[rel] = (f"{file_id} is not a notebook of this assignment "
                                     f"(expected: {', '.join(sorted(self.notebooks))})")
                return None
        out = {"student_id": who.id, "file_id": file_id}
        path = rel.replace(os.sep, "/")
        when = self.zip_times.get(path) or next(
            (t for k, t in self.folder_times if path.startswith(k)), None)
        if when:
            out["timestamp"] = when
        self.matched[rel] = {"student": who.id, "late": bool(info.get("late")), "file": file_id}
        return out


# ---------------------------------------------------------------- the command
@dataclass
class Collected:
    placed: dict[str, list[str]] = field(default_factory=dict)   # student -> notebooks
    unchanged: list[str] = field(default_factory=list)
    replaced: dict[str, list[str]] = field(default_factory=dict)  # student -> files it had
    skipped: dict[str, str] = field(default_factory=dict)        # file in the zip -> why
    late: list[str] = field(default_factory=list)                 # Canvas's LATE flag
    timestamps: int = 0


def _zip_times(path: Path, tz) -> dict[str, str]:
    """Unpacked path (``<zip stem>/<member>``) -> the member's date, as an ISO time with offset."""
    stem = Path(path).stem
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                when = dt.datetime(*info.date_time, tzinfo=tz)
            except ValueError:
                continue
            if when.year <= 1980:  # the zip format's "no date"
                continue
            out[f"{stem}/{info.filename}"] = when.isoformat(sep=" ")
            if info.filename.lower().endswith(".zip"):  # its files: unpacked into <name>/
                out[f"{stem}/{info.filename[:-4]}/"] = when.isoformat(sep=" ")
    return out


def collect(assignment: str, zip_path: Path, roster: Path, lms: str | None = None,
            replace: bool = False, zip_times: bool = True) -> Collected:
    from nbgrader.apps import ZipCollectApp
    from nbgrader.coursedir import CourseDirectory

    zip_path = Path(zip_path).resolve()
    if not zip_path.is_file():
        raise CollectError(f"no file {zip_path}")
    released = course.COURSE / "release" / assignment
    if not any(released.glob("*.ipynb")):
        raise CollectError(f"{assignment} has no released notebook in {released}; "
                           f"run: python -m grader release {assignment}")
    read_roster(roster)  # a bad roster fails before anything is unpacked
    check_archive(zip_path)
    lms = lms or detect_lms(zip_path)

    work = course.WORK / f"collect-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    archive = work / "downloaded" / assignment / "archive"
    archive.mkdir(parents=True)
    shutil.copy(zip_path, archive / zip_path.name)
    extracted = work / "downloaded" / assignment / "extracted"

    cfg = course.load_config()
    cfg.ZipCollectApp.collect_directory_structure = str(work / "{downloaded}" / "{assignment_id}"
                                                        / "{collect_step}")
    cfg.ZipCollectApp.collector_plugin = LmsCollector
    cfg.ZipCollectApp.strict = True
    cfg.ExtractorPlugin.zip_ext = [".zip"]
    cfg.LmsCollector.lms = lms
    cfg.LmsCollector.extracted = str(extracted)
    cfg.LmsCollector.roster_file = str(Path(roster).resolve())
    cfg.LmsCollector.released = str(released)
    cfg.LmsCollector.zip_times = _zip_times(zip_path, course_timezone()) if zip_times else {}
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id = assignment
    app = ZipCollectApp(config=cfg, coursedir=coursedir)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    app.log.addHandler(handler)
    app.log.setLevel(logging.WARNING)
    app.log.propagate = False
    for h in list(app.log.handlers):
        if h is not handler:
            app.log.removeHandler(h)
    out = Collected()
    try:
        app.init_plugins()
        app.extract_archive_files()
        files = sorted(str(p) for p in extracted.rglob("*") if p.is_file() or p.is_symlink())
        data = app._collect_files(files) if files else {}
        plugin = app.collector_plugin_inst
        out.skipped = dict(plugin.skipped)
        out.late = sorted({m["student"] for m in plugin.matched.values() if m["late"]})
        taken = {os.path.relpath(f, extracted) for d in data.values() for f in d["src_files"]}
        for rel, m in plugin.matched.items():
            if rel not in taken and rel not in out.skipped:
                out.skipped[rel] = f"an older copy of {m['student']}'s {m['file']} (the newer one was taken)"
        # what is already in submitted/: identical -> unchanged; different -> replace or refuse
        conflicts = {}
        for student, d in list(data.items()):
            dest = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
            if dest.is_symlink():
                raise CollectError(f"{dest} is a symbolic link; remove it first")
            if not dest.exists() or not any(dest.iterdir()):
                continue
            if _same(d, dest):
                out.unchanged.append(student)
                del data[student]
            else:
                conflicts[student] = sorted(p.name for p in dest.iterdir())
        if conflicts and not replace:
            raise CollectError(
                "already in submitted/ and different from the zip (nothing was placed; pass "
                "--replace to replace them): "
                + "; ".join(f"{s}/{assignment} ({', '.join(f)})" for s, f in sorted(conflicts.items())))
        out.replaced = conflicts
        app.force = bool(conflicts)
        app._transfer_files(data)
        for student, d in data.items():
            out.placed[student] = [Path(f).name for f in d["dest_files"]]
            if d.get("timestamp") is not None:
                out.timestamps += 1
    except SystemExit:
        errors = [ln[len("[ERROR] "):] for ln in log.getvalue().splitlines() if ln.startswith("[ERROR]")]
        raise CollectError("nbgrader's zip_collect stopped: " + ("; ".join(errors) or log.getvalue()[-500:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _register(read_roster(roster))
    return out


def _same(d: dict, dest: Path) -> bool:
    """Whether ``dest`` already holds exactly these notebooks (and this timestamp)."""
    names = {Path(f).name for f in d["dest_files"]}
    have = {p.name for p in dest.iterdir()} - {"timestamp.txt"}
    if have != names:
        return False
    for src, dst in zip(d["src_files"], d["dest_files"]):
        if not filecmp.cmp(src, dst, shallow=False):
            return False
    stamp = dest / "timestamp.txt"
    if d.get("timestamp") is not None:
        return stamp.is_file() and stamp.read_text().strip() == d["timestamp"].isoformat(" ")
    return not stamp.exists()


def _register(roster: list[Student]) -> None:
    """Every roster student into the gradebook (so that one who handed nothing in is
    exported as ``missing``), with the name and email."""
    from nbgrader.api import Gradebook

    cfg = course.load_config()
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        for s in roster:
            if "," in s.name:
                last, first = (p.strip() for p in s.name.split(",", 1))
            else:
                first, _, last = s.name.rpartition(" ")
            gb.update_or_create_student(s.id, first_name=first or None, last_name=last or None,
                                        email=s.email or None, lms_user_id=s.canvas_id or None)


def report(assignment: str, out: Collected, stream=sys.stdout) -> int:
    """Print what ``collect`` did; the exit status: 0 only when every file was placed."""
    where = course.COURSE / "submitted"
    for student in sorted(out.placed):
        late = " (marked LATE by Canvas)" if student in out.late else ""
        print(f"placed {student}/{assignment}: {', '.join(out.placed[student])}{late}", file=stream)
    for student, had in sorted(out.replaced.items()):
        print(f"replaced {student}/{assignment} (it held: {', '.join(had)})", file=stream)
    for student in sorted(out.unchanged):
        print(f"unchanged {student}/{assignment} (already there, identical)", file=stream)
    for rel, why in sorted(out.skipped.items()):
        member = rel.replace(os.sep, "/").split("/", 1)[-1]  # without the folder of the zip
        print(f"NOT PLACED {member}: {why}", file=sys.stderr)
    not_placed = [r for r, why in out.skipped.items() if not why.startswith("an older copy")]
    print(f"{assignment}: {len(out.placed)} placed, {len(out.unchanged)} unchanged, "
          f"{len(out.replaced)} replaced, {len(not_placed)} files not placed, "
          f"{out.timestamps} timestamps, in {where}/", file=stream)
    return 1 if not_placed else 0
