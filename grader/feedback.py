"""Feedback HTML: no hidden test code, short error messages, math that renders offline.

``SanitizeTestOutputs`` runs before nbgrader's ``ClearHiddenTests`` (see
nbgrader_config.py): it collects the hidden test lines, reduces the outputs of
test cells to ``ErrorName: message`` (no traceback, which would quote the hidden
code), drops anything else a hidden test cell printed, and removes any line that
quotes hidden test code from every output of the notebook.  After nbgrader
writes the HTML, ``generate`` replaces the MathJax 2 script that nbgrader's
template loads from a CDN with a local copy of MathJax 3 placed next to the
feedback file.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from nbgrader.converters import GenerateFeedback, NbGraderException
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from . import course

HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
REDACTED = "[line removed: it quoted hidden test code]"


def _norm(line: str) -> str:
    return " ".join(line.split())


class SanitizeTestOutputs(NbGraderPreprocessor):
    """Short, hidden-code-free outputs for the feedback."""

    max_message = Integer(600, help="longest error message kept").tag(config=True)
    begin = Unicode(HIDDEN_BEGIN).tag(config=True)
    end = Unicode(HIDDEN_END).tag(config=True)

    def preprocess(self, nb, resources):
        hidden: set[str] = set()
        for cell in nb.cells:
            inside = False
            for line in cell.source.splitlines():
                if self.begin in line:
                    inside = True
                elif self.end in line:
                    inside = False
                elif inside and len(_norm(line)) >= 8:
                    hidden.add(_norm(line))
        self._hidden = hidden
        return super().preprocess(nb, resources)

    def _clean(self, text: str) -> str:
        if not self._hidden:
            return text
        lines = []
        for line in text.splitlines(keepends=True):
            plain = _norm(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if plain and any(h in plain for h in self._hidden):
                lines.append(REDACTED + ("\n" if line.endswith("\n") else ""))
            else:
                lines.append(line)
        return "".join(lines)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        meta = cell.metadata.get("nbgrader", {})
        is_test = meta.get("grade") and not meta.get("solution")
        has_hidden = self.begin in cell.source
        outputs = []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                evalue = self._clean(str(out.get("evalue", "")))[: self.max_message]
                if is_test:
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {evalue}"]
                else:
                    out["traceback"] = [self._clean(t) for t in out.get("traceback", [])]
                out["evalue"] = evalue
                outputs.append(out)
            elif has_hidden:
                continue  # whatever a hidden test cell printed stays out of the feedback
            elif kind == "stream":
                out["text"] = self._clean(out.get("text", ""))
                outputs.append(out)
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                for mime in list(data):
                    if mime.startswith("text/") and isinstance(data[mime], str):
                        data[mime] = self._clean(data[mime])
                outputs.append(out)
            else:
                outputs.append(out)
        cell.outputs = outputs
        return cell, resources


# ---------------------------------------------------------------- offline math
MATHJAX_CONFIG = """<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: 'tex2jax_ignore', processHtmlClass: 'tex2jax_process'},
  svg: {fontCache: 'global'}
};
</script>
<script id="MathJax-script" src="mathjax/tex-svg.js"></script>"""


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax wheel: MathJax 3 static files

    base = Path(mathjax.__file__).parent
    hits = sorted(base.rglob("es5/tex-svg.js"))
    if not hits:
        raise FileNotFoundError(f"no es5/tex-svg.js under {base}")
    return hits[0]


def localize_mathjax(html_path: Path) -> None:
    """Point the page at mathjax/tex-svg.js next to it (SVG output needs no font files)."""
    html = html_path.read_text(encoding="utf-8")
    html = re.sub(r"<script[^>]*>\s*MathJax\.Hub\.Config\(.*?</script>", "", html, flags=re.S)
    html = re.sub(r'<script[^>]*src="https?://[^"]*[Mm]ath[Jj]ax[^"]*"[^>]*>\s*</script>', "", html)
    html = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", html)
    html = html.replace("</head>", MATHJAX_CONFIG + "\n</head>", 1)
    html_path.write_text(html, encoding="utf-8")
    dest = html_path.parent / "mathjax" / "tex-svg.js"
    if not dest.exists():
        dest.parent.mkdir(exist_ok=True)
        try:
            os.link(mathjax_source(), dest)
        except OSError:
            shutil.copy(mathjax_source(), dest)


class ReportsOnly(GenerateFeedback):
    """nbgrader's GenerateFeedback, restricted to the reports: it converts only the
    notebooks of the autograded folder that are regular files (no link, nothing else),
    and copies none of the folder's other files into feedback/ (nbgrader copies them
    all, following links)."""

    def init_notebooks(self) -> None:
        super().init_notebooks()
        for folder, notebooks in list(self.assignments.items()):
            safe = [nb for nb in notebooks if _regular_inside(Path(nb), Path(folder))]
            for nb in sorted(set(notebooks) - set(safe)):
                self.log.warning("Skipping %s: not a regular file inside its folder", nb)
            if safe:
                self.assignments[folder] = safe
            else:
                del self.assignments[folder]
        if not self.assignments:
            raise NbGraderException("no notebook (regular file) to convert")

    def init_assignment(self, assignment_id: str, student_id: str) -> None:
        return  # the reports only: nothing else of the autograded folder is copied


def _regular_inside(path: Path, folder: Path) -> bool:
    """A regular file (not a link) whose folders are not links either, inside ``folder``."""
    try:
        if path.is_symlink() or not path.is_file():
            return False
        for parent in (path.parent, *path.parents):
            if parent.is_symlink():
                return False
            if parent == course.COURSE:
                break
        return path.resolve().parent == folder.resolve() and path.stat().st_size <= MAX_NOTEBOOK
    except OSError:
        return False


MAX_NOTEBOOK = 64 * 1024**2


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


FAILED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{assignment}: not graded</title>
<style>body {{font-family: sans-serif; max-width: 46em; margin: 2em auto; line-height: 1.5}}
pre {{white-space: pre-wrap; background: #f6f6f6; padding: 1em}}</style></head>
<body>
<h1>{assignment}: your submission could not be graded</h1>
<p>Student: <b>{student}</b>. No score was given: this is not a zero. The grader said why:</p>
<pre>{message}</pre>
<p>Fix this and hand in the notebook again (keep its name and its cells; run
<code>python -m grader check {notebook}.ipynb</code> first).</p>
</body></html>
"""


def _failed_page(assignment: str, student: str, message: str, notebooks: list[str]) -> Path:
    import html

    dest = course.COURSE / "feedback" / student / assignment
    _remove(dest)
    dest.mkdir(parents=True)
    for name in notebooks or [assignment]:
        (dest / f"{name}.html").write_text(FAILED_PAGE.format(
            assignment=html.escape(assignment), student=html.escape(student),
            message=html.escape(message), notebook=html.escape(name)), encoding="utf-8")
    return dest


def _gradebook(assignment: str) -> tuple[set[str], list[str]]:
    """The students of the gradebook, and the notebooks of ``assignment``."""
    from nbgrader.api import Gradebook

    cfg = course.load_config()
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        return ({s.id for s in gb.students},
                sorted(nb.name for nb in gb.find_assignment(assignment).notebooks))


def students_with_results(assignment: str) -> list[str]:
    from .autograde import load_results

    results = load_results(assignment)
    autograded = course.COURSE / "autograded"
    names = set(results)
    if not results and autograded.is_dir():
        names = {p.name for p in autograded.iterdir() if (p / assignment).is_dir()}
    return sorted(names)


def generate(assignment: str, students: list[str] | None = None):
    """Feedback for every student of ``assignment`` with a result: nbgrader's page for a
    graded one, a page saying why for one whose grading failed.  Returns (graded students
    done, failed students done, problems)."""
    from nbgrader.utils import capture_log, temp_attrs
    from traitlets.config import Config

    from .autograde import load_results

    results = load_results(assignment)
    in_gradebook, notebooks = _gradebook(assignment)
    graded = [s for s in students_with_results(assignment)
              if results.get(s, {}).get("status", "graded") == "graded"]
    failed = sorted(s for s, r in results.items() if r.get("status") == "failed")
    if students:
        graded = [s for s in graded if s in students]
        failed = [s for s in failed if s in students]
    api = course.api()
    cfg = Config()
    cfg.HTMLExporter.template_name = "feedback"
    done, failed_done, problems = [], [], []
    for student in failed:
        _failed_page(assignment, student, results[student].get("message") or "unknown error", notebooks)
        failed_done.append(student)
    for student in graded:
        if student not in in_gradebook:
            problems.append(f"{student}: not in the gradebook (removed?): no feedback")
            continue
        dest = course.COURSE / "feedback" / student / assignment
        _remove(dest)  # no stale page, nor anything that was not written here
        with temp_attrs(api.coursedir, assignment_id=assignment, student_id=student):
            app = ReportsOnly(coursedir=api.coursedir, parent=api)
            app.update_config(cfg)
            app.force = True
            result = capture_log(app)
        if not result["success"]:
            problems.append(f"{student}: {result.get('error', '')[-300:]}")
            continue
        for html in dest.glob("*.html"):
            localize_mathjax(html)
        done.append(student)
    return done, failed_done, problems
