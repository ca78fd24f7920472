"""The roster: the course's student ids, and the names and LMS ids they go by."""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


class CollectError(Exception):
    """Something the instructor has to fix; the message says what."""


@dataclass
class Student:
    id: str
    name: str = ""
    canvas_id: str = ""
    moodle_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""


ALIASES = {
    "student_id": "id", "student": "name", "name": "name", "full_name": "name",
    "sortable_name": "name", "id": "canvas_id", "canvas_id": "canvas_id",
    "canvas_user_id": "canvas_id", "moodle_id": "moodle_id", "participant_id": "moodle_id",
    "sis_user_id": "sis_user_id", "sis_login_id": "sis_login_id", "section": "section",
    "email": "email", "email_address": "email",
}


def read_roster(path: Path) -> list[Student]:
    """The roster CSV: a header row, then one student a row.  Columns (any order, names
    case-insensitive): ``student_id`` (the course's id, the folder name) and ``name``
    (``First Last`` or ``Last, First``), optionally ``canvas_id``, ``moodle_id``,
    ``sis_user_id``, ``sis_login_id``, ``section``, ``email``.  Canvas's own gradebook
    export also works (``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``,
    ``Section``): the student id is then the SIS Login ID."""
    path = Path(path)
    if not path.is_file():
        raise CollectError(f"no roster file {path}")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CollectError(f"{path}: the roster is empty")
    keys = [ALIASES.get(re.sub(r"[\s-]+", "_", h.strip().lower())) for h in header]
    if "id" not in keys and "sis_login_id" not in keys:
        raise CollectError(f"{path}: the roster needs a student_id column (found: {', '.join(header)})")
    students, seen = [], set()
    for n, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {}
        for key, cell in zip(keys, row):
            if key and cell.strip() and key not in values:
                values[key] = cell.strip()
        if values.get("name", "").lower().startswith("points possible"):
            continue  # the second row of a Canvas export
        values.setdefault("id", values.get("sis_login_id", ""))
        sid = values["id"]
        if not ID_PATTERN.match(sid) or sid in (".", ".."):
            raise CollectError(f"{path}, line {n}: {sid!r} is not usable as a student id "
                               "(letters, digits and . _ @ + - only)")
        if sid in seen:
            raise CollectError(f"{path}, line {n}: student id {sid!r} appears twice")
        seen.add(sid)
        students.append(Student(**values))
    if not students:
        raise CollectError(f"{path}: the roster has no students")
    return students


def plain_name(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text.lower() if c.isalnum() and not unicodedata.combining(c))


def name_keys(name: str) -> set[str]:
    """Ways an LMS may spell a roster name: Moodle's ``First Last``, Canvas's ``lastfirst``."""
    name = " ".join(name.split())
    if not name:
        return set()
    if "," in name:
        last, first = (p.strip() for p in name.split(",", 1))
    else:
        parts = name.split(" ")
        last, first = parts[-1], " ".join(parts[:-1])
    return {plain_name(name), plain_name(last + first), plain_name(first + last)}
