"""Keep the errata table in one piece.

``book/errata.md`` carries the line ``<!-- errata rows below -->`` right under the table's
header so that chapter authors know where to add rows. In Markdown an HTML comment ends a
pipe table, which would turn every row added below the marker into a plain paragraph. This
extension removes the marker line from the source on ``source-read``, before MyST parses it,
so header and rows form one table; the file on disk keeps the marker.
"""

from __future__ import annotations

from sphinx.application import Sphinx

MARKER = "<!-- errata rows below -->"


def drop_marker(app: Sphinx, docname: str, source: list[str]) -> None:
    if MARKER in source[0]:
        source[0] = "\n".join(
            line for line in source[0].split("\n") if line.strip() != MARKER
        )


def setup(app: Sphinx) -> dict:
    app.connect("source-read", drop_marker)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
