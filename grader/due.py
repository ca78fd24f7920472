"""Due dates and the late penalty.

A due date is nbgrader's ``duedate`` of the assignment in the gradebook (``release --due``);
``PerDayPenalty`` is the late-submission plugin of nbgrader's ``AssignLatePenalties`` (see
nbgrader_config.py): a percentage of the points per started day late.
"""
from __future__ import annotations

import datetime as dt
import functools
import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

from . import course


@functools.lru_cache(maxsize=None)
def course_timezone():
    """The course's time zone (nbgrader's ``NbGraderAPI.timezone``): a due date or a zip
    file date without an offset is read in it."""
    from zoneinfo import ZoneInfo

    cfg = course.load_config()
    name = cfg.NbGraderAPI.get("timezone", "UTC") if "NbGraderAPI" in cfg else "UTC"
    return ZoneInfo(name)


def parse_when(text: str) -> dt.datetime:
    """An ISO date (``2026-12-10T23:59``, optional offset) as naive UTC, nbgrader's convention."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"not a date: {text!r} (expected YYYY-MM-DDTHH:MM, e.g. 2026-12-10T23:59)")
    if when.tzinfo is None:
        when = when.replace(tzinfo=course_timezone())
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None)


def show_when(when: dt.datetime | None) -> str:
    """A naive UTC datetime from the gradebook, in the course's time zone."""
    if when is None:
        return ""
    local = when.replace(tzinfo=dt.timezone.utc).astimezone(course_timezone())
    return local.strftime("%Y-%m-%d %H:%M %Z")


def set_due(assignment: str, due: dt.datetime | None) -> None:
    """Store the due date of ``assignment`` in the gradebook (nbgrader's ``duedate``)."""
    from nbgrader.api import Gradebook

    cfg = course.load_config()
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        gb.update_or_create_assignment(assignment, duedate=due)


class PerDayPenalty(LateSubmissionPlugin):
    """``percent_per_day`` of a notebook's points per started day late (after
    ``grace_minutes``), at most all of them.  nbgrader calls it for each late notebook
    while autograding, with the points autograded then."""

    percent_per_day = Float(10.0, help="percent of the points lost per started day late").tag(config=True)
    grace_minutes = Float(0.0, help="lateness forgiven, in minutes").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        late = total_seconds_late - 60 * self.grace_minutes
        if late <= 0 or not score:
            return None
        days = math.ceil(late / 86400)
        return round(score * min(1.0, days * self.percent_per_day / 100), 4)
