"""The course folder, its nbgrader configuration and nbgrader's Python API."""
from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

CODE = Path(__file__).resolve().parent   # this package, with nbgrader_config.py
REPO = CODE.parent
# The course folder (source/, release/, submitted/, autograded/, feedback/, the gradebook).
# It is this package's folder; GRADER_COURSE_DIR points elsewhere (the tests use a copy).
COURSE = Path(os.environ.get("GRADER_COURSE_DIR") or CODE).resolve()
CONFIG_FILE = CODE / "nbgrader_config.py"
RESULTS = COURSE / "results"  # grader/results/<assignment>.json: status of every submission
WORK = COURSE / ".work"       # scratch space of autograde runs

# nbgrader runs the `alembic` command when it creates a gradebook: make the venv's
# scripts reachable even when the venv is not activated.
_bin = os.path.dirname(sys.executable)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# nbgrader's in-process API triggers this SQLAlchemy warning on every gradebook commit.
warnings.filterwarnings("ignore", message=".*not in session.*")
try:
    from sqlalchemy.exc import SAWarning
    warnings.filterwarnings("ignore", category=SAWarning)
except ImportError:  # pragma: no cover
    pass


def load_config(overrides: Config | None = None, root: Path | None = None) -> Config:
    """The course's nbgrader_config.py (+ overrides), with absolute course paths."""
    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    root = Path(root or COURSE)
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.db_url = "sqlite:///" + str(root / "gradebook.db")
    if root != CODE and not (root / "source").exists():
        cfg.CourseDirectory.source_directory = str(COURSE / "source")
    if overrides is not None:
        cfg.merge(overrides)
    return cfg


def api(cfg: Config | None = None, quiet: bool = True):
    """An ``NbGraderAPI`` on the course folder."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cfg = cfg if cfg is not None else load_config()
    if quiet:
        cfg.NbGraderAPI.log_level = "WARN"
        logging.getLogger("traitlets").setLevel(logging.WARNING)
    coursedir = CourseDirectory(config=cfg)
    return NbGraderAPI(coursedir=coursedir, config=cfg)


def db_path(cfg: Config) -> Path:
    url = cfg.CourseDirectory.db_url
    assert url.startswith("sqlite:///"), url
    return Path(url[len("sqlite:///"):])


def source_assignments() -> list[str]:
    return sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())


# settings that the command line may change -> nbgrader/traitlets configuration
SETTINGS = {
    "cell_timeout": ("SandboxedExecute", "timeout"),
    "notebook_budget": ("SandboxedExecute", "notebook_budget"),
    "interrupt_grace": ("SandboxedExecute", "interrupt_grace"),
    "memory_mb": ("SandboxKernelManager", "memory_mb"),
    "nproc": ("SandboxKernelManager", "nproc"),
    "sandbox": ("SandboxKernelManager", "sandbox"),
}


def overrides(settings: dict | None) -> Config:
    cfg = Config()
    for key, value in (settings or {}).items():
        if key in SETTINGS and value is not None:
            section, trait = SETTINGS[key]
            cfg[section][trait] = value
    return cfg


# ---------------------------------------------------------------- what each assignment is worth
def assignment_points(assignment: str) -> dict:
    """Read from the source notebook(s) of ``assignment``: the code cells a student fills
    in, and the points of the test cells a student can run (``visible``; some also hold
    hidden checks), of the test cells that are entirely hidden, and of the answers graded
    by hand (book/instructor_guide.md shows these as a table)."""
    import nbformat

    out = {"title": "", "cells": [], "visible": 0.0, "hidden": 0.0, "manual": 0.0}
    for path in sorted((COURSE / "source" / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown" and not out["title"] and cell.source.startswith("# "):
                title = cell.source.splitlines()[0][2:].strip()
                out["title"] = title.split(":", 1)[1].strip() if ":" in title else title
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and not meta.get("grade") and cell.cell_type == "code":
                out["cells"].append(meta.get("grade_id", "?"))
            if not meta.get("grade"):
                continue
            points = float(meta.get("points", 0))
            if meta.get("solution"):
                out["manual"] += points
            elif _visible_code(cell.source):
                out["visible"] += points  # students can run it (it may hold hidden checks too)
            else:
                out["hidden"] += points
    out["total"] = out["visible"] + out["hidden"] + out["manual"]
    return out


def _visible_code(source: str) -> bool:
    """Whether a test cell keeps code once its hidden part is removed (what `check` runs)."""
    shown, hidden = [], False
    for line in source.splitlines():
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            shown.append(line)
    return any(ln.strip() and not ln.strip().startswith("#") for ln in shown)


def points_table() -> str:
    """The Markdown table of every assignment in source/ and its points."""
    def n(x):
        return f"{x:g}"

    rows = ["| assignment | topic | cells the student fills in | visible tests | hidden tests "
            "| by hand | total |",
            "|---|---|---|---|---|---|---|"]
    for assignment in source_assignments():
        p = assignment_points(assignment)
        cells = ", ".join(f"`{c}`" for c in p["cells"])
        rows.append(f"| `{assignment}` | {p['title']} | {cells} | {n(p['visible'])} | {n(p['hidden'])} | "
                    f"{n(p['manual'])} | {n(p['total'])} |")
    return "\n".join(rows) + "\n"
