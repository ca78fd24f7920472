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


def generate(assignment: str, students: list[str] | None = None):
    """Feedback for every graded student of ``assignment``; returns (done, problems)."""
    from .autograde import load_results

    results = load_results(assignment)
    graded = sorted(s for s, r in results.items() if r.get("status") == "graded")
    autograded = course.COURSE / "autograded"
    if not results and autograded.is_dir():  # autograded outside `python -m grader`
        graded = sorted(p.name for p in autograded.iterdir() if (p / assignment).is_dir())
    if students:
        graded = [s for s in graded if s in students]
    api = course.api()
    done, problems = [], []
    for student in graded:
        result = api.generate_feedback(assignment, student, force=True)
        if not result["success"]:
            problems.append(f"{student}: {result.get('error', '')[-300:]}")
            continue
        for html in (course.COURSE / "feedback" / student / assignment).glob("*.html"):
            localize_mathjax(html)
        done.append(student)
    return done, problems
