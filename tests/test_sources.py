"""book/sources.md maps every section of every seed document to the place the book covers it.

The seed documents live outside the repository, in ``../shared/seeds/*.txt``. Their section
headings are read with the rules below, and every one must appear, in the seed's order, as a row
of that seed's table in ``book/sources.md``; every chapter or page that the table links to must
exist, and every ``{ref}`` label must be defined above a heading somewhere in the book.

Heading rules (the same ones the page was written from):

* A Markdown seed: YAML front matter (between two ``---`` lines at the top) and fenced code
  blocks (three or more backticks or tildes) are skipped, so ``# comments`` in code are not
  headings. Every other ATX heading (``#`` to ``######``) is a section, except a level-1 heading
  that comes before any other heading: that is the document's title. Without one, the title is the
  ``title:`` of the front matter. Section depth: level 2 is depth 0, level 3 depth 1, and so on.
* A seed without Markdown headings is a PDF-to-text dump (Bahng's notes): its sections are the
  entries of its table of contents, the tab-separated lines ``number<TAB>title<TAB>page`` after
  the line ``Contents``, written ``"number title"`` (``"title"`` when unnumbered); depth is the
  number of dots in the number. Each entry must also appear as a line of the body. The title and
  the author are the first two non-empty lines.

In the page, each seed has a ``##`` heading whose first ``*italic*`` span is the seed's title,
followed by a two-column table: the heading (indented with one ``&emsp;`` per depth level, and
optionally shortened with a trailing ``…`` when quoting it in full would trip
``seedcopy.py``) and where the book covers it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
SOURCES = ROOT / "book" / "sources.md"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CONTENTS_ENTRY = re.compile(r"^(\d+(?:\.\d+)*)?\t([^\t]+)\t\d+$")
ROLE = re.compile(r"\{(doc|ref)\}`([^`]*)`")
LABEL = re.compile(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$")
INDENT = "&emsp;"


@dataclass
class Seed:
    path: Path
    title: str
    author: str | None = None
    sections: list[tuple[int, str]] = field(default_factory=list)  # (depth, heading)


# --------------------------------------------------------------------------- seed headings
def _front_matter(lines: list[str]) -> tuple[dict[str, str], int]:
    """Simple `key: value` pairs of a leading YAML block, and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    meta = {}
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return meta, i + 1
        key, sep, value = lines[i].partition(":")
        if sep and not key.startswith((" ", "-")):
            meta[key.strip()] = value.strip().strip("\"'")
    raise ValueError("unterminated front matter")


def markdown_headings(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Front matter and every ATX heading (level, text) outside code fences."""
    lines = text.split("\n")
    meta, start = _front_matter(lines)
    headings, fence = [], None
    for line in lines[start:]:
        m = FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        h = ATX.match(line)
        if h:
            headings.append((len(h.group(1)), h.group(2).strip()))
    return meta, headings


def contents_headings(text: str) -> list[tuple[int, str]]:
    """The table of contents of a PDF-to-text dump: (depth, "number title")."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == "Contents") + 1
    entries = []
    for line in lines[start:]:
        if not line.strip():
            if entries:
                break
            continue
        m = CONTENTS_ENTRY.match(line)
        if not m:
            break
        number, title = m.group(1), m.group(2).strip()
        entries.append((number.count(".") if number else 0, f"{number} {title}" if number else title))
    return entries


def read_seed(path: Path) -> Seed:
    text = path.read_text(encoding="utf-8")
    meta, headings = markdown_headings(text)
    if headings:
        title = meta.get("title")
        if headings[0][0] == 1:
            title = headings.pop(0)[1]
        assert title, f"{path.name}: no title"
        return Seed(path, title, None, [(max(level - 2, 0), h) for level, h in headings])
    first = [line.strip() for line in text.split("\n") if line.strip()]
    return Seed(path, first[0], first[1], contents_headings(text))


@pytest.fixture(scope="module")
def seeds() -> list[Seed]:
    paths = sorted(SEEDS.glob("*.txt"))
    assert len(paths) == 5, f"expected the five seed documents in {SEEDS} (../shared beside the checkout)"
    return [read_seed(p) for p in paths]


# --------------------------------------------------------------------------- the page
def normalize(text: str) -> str:
    return " ".join(text.replace("\\", "").split())


def page_tables(text: str) -> dict[str, list[tuple[int, str, str]]]:
    """title -> rows (depth, heading cell, where cell) of each `## *title* ...` section."""
    tables: dict[str, list[tuple[int, str, str]]] = {}
    current = None
    for line in text.split("\n"):
        if line.startswith("## "):
            m = re.search(r"\*([^*]+)\*", line)
            current = normalize(m.group(1)) if m else None
            if current is not None:
                assert current not in tables, f"two sections for {current!r}"
                tables[current] = []
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 2 or set(cells[0]) <= set("-: ") or cells[0].lower().startswith("seed section"):
            continue  # header and delimiter rows
        heading, depth = cells[0], 0
        while heading.startswith(INDENT):
            heading, depth = heading[len(INDENT):].lstrip(), depth + 1
        tables[current].append((depth, heading, cells[1]))
    return tables


def quotes(cell: str, heading: str) -> bool:
    cell, heading = normalize(cell), normalize(heading)
    if cell.endswith("…"):
        stem = cell[:-1].rstrip()
        return len(stem) >= len(heading) / 2 and heading.startswith(stem)
    return cell == heading


def book_labels() -> dict[str, Path]:
    """Every `(label)=` target in the chapters and pages, each directly above a heading."""
    import nbformat

    labels: dict[str, Path] = {}
    sources = [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "book").glob("*.md"))]
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(p, as_version=4)
        sources += [(p, c.source) for c in nb.cells if c.cell_type == "markdown"]
    for path, text in sources:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            m = LABEL.match(line)
            if m:
                assert i + 1 < len(lines) and lines[i + 1].startswith("#"), \
                    f"{path.name}: ({m.group(1)})= is not above a heading"
                assert m.group(1) not in labels, f"label {m.group(1)} defined twice"
                labels[m.group(1)] = path
    return labels


# --------------------------------------------------------------------------- tests
def test_seed_headings_are_found(seeds):
    assert len(seeds) == 5
    for seed in seeds:
        assert len(seed.sections) >= 10, f"{seed.path.name}: only {len(seed.sections)} headings found"
        assert not any(h.lower().startswith(("define ", "step ", "import ")) for _, h in seed.sections), \
            f"{seed.path.name}: a code comment was read as a heading"
    bahng = [s for s in seeds if s.author]
    assert len(bahng) == 1
    body = {line.strip() for line in bahng[0].path.read_text(encoding="utf-8").split("\n")}
    for _, heading in bahng[0].sections:
        assert heading in body, f"contents entry {heading!r} is not a line of the body"


def test_every_seed_section_has_a_row(seeds):
    tables = page_tables(SOURCES.read_text(encoding="utf-8"))
    assert set(tables) == {normalize(s.title) for s in seeds}, "one section per seed, named by its title"
    for seed in seeds:
        rows = tables[normalize(seed.title)]
        expected = seed.sections
        missing = [h for _, h in expected if not any(quotes(cell, h) for _, cell, _ in rows)]
        assert not missing, f"{seed.title!r}: no row for {missing}"
        assert len(rows) == len(expected), f"{seed.title!r}: {len(rows)} rows for {len(expected)} sections"
        for (depth, heading), (row_depth, cell, where) in zip(expected, rows):
            assert quotes(cell, heading), f"{seed.title!r}: row {cell!r} where {heading!r} was expected (seed order)"
            assert row_depth == depth, f"{seed.title!r}: {heading!r} indented {row_depth}, expected {depth}"
            assert ROLE.search(where), f"{seed.title!r}: {heading!r} has no {{doc}} or {{ref}} link"
        if seed.author:
            header = next(line for line in SOURCES.read_text(encoding="utf-8").split("\n")
                          if line.startswith("## ") and f"*{seed.title}*" in line)
            assert seed.author in header, f"{seed.title!r}: the heading does not name {seed.author}"


def test_every_link_resolves():
    text = SOURCES.read_text(encoding="utf-8")
    labels = book_labels()
    links = ROLE.findall(text)
    assert links
    for role, content in links:
        m = re.search(r"<([^>]+)>\s*$", content)
        target = (m.group(1) if m else content).strip()
        if role == "doc":
            base = (ROOT / target.lstrip("/")) if target.startswith("/") else (SOURCES.parent / target)
            assert any(base.with_name(base.name + ext).exists() for ext in (".md", ".ipynb")), \
                f"{{doc}} target {target!r} does not exist"
        else:
            assert target in labels, f"{{ref}} label {target!r} is not defined above a heading"


def test_page_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert "file: book/sources" in toc
    assert toc.index("file: book/sources") < toc.index("file: book/errata")
