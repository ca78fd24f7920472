"""The book builds with warnings as errors, and every page renders for a reader.

1. ``jupyter-book build . -W -n --keep-going`` into a fresh folder (every chapter is executed).
2. No page loads anything from the network (script, stylesheet, image, frame, font ...).
3. Every page of the table of contents is opened in headless Chromium, as a reader would open
   it from disk, and its DOM after scripts ran is checked: all mathematics typeset by MathJax
   (no raw ``$...$``, ``\\(``, ``\\[`` or ``\\begin{`` left in the text, no MathJax error),
   every image present and decoded by the browser, every internal link and ``#anchor`` valid,
   no resource that failed to load and no uncaught JavaScript error.
4. Screenshots of the landing page and of one chapter go to ``_build/screenshots/``.

Chromium is required (``make system`` installs it); without it the browser tests fail.
Environment knobs: ``BOOK_BUILD_TIMEOUT`` (s, default 3600), ``BOOK_VIRTUAL_TIME_MS``
(Chromium virtual time budget per page, default 10000), ``BOOK_BROWSER_JOBS`` (default 2).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import reader_checks
import yaml
from browser import (
    VIRTUAL_TIME_MS,
    Page,
    chromium,
    dump_dom,
    report_at_width,
    run_chromium,
    static_page,
    untypeset_math,
)
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = ROOT / "_build" / "screenshots"
BUILD_TIMEOUT = int(os.environ.get("BOOK_BUILD_TIMEOUT", "3600"))
BROWSER_JOBS = int(os.environ.get("BOOK_BROWSER_JOBS", "2"))


# --------------------------------------------------------------------------- table of contents
def toc_docnames() -> list[str]:
    """Every file named in _toc.yml, in reading order (without extension)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names: list[str] = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


PAGES = toc_docnames()


# --------------------------------------------------------------------------- build
def jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    assert found, "jupyter-book is not installed: run `make setup`"
    return [found]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Build the book once into a fresh folder; returns (html dir, return code, log)."""
    out = tmp_path_factory.mktemp("book")
    cmd = jupyter_book() + ["build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(out)]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        rc, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -1
        out_so_far = exc.stdout or ""
        if isinstance(out_so_far, bytes):
            out_so_far = out_so_far.decode(errors="replace")
        log = f"build timed out after {BUILD_TIMEOUT} s (BOOK_BUILD_TIMEOUT)\n" + out_so_far
    return out / "_build" / "html", rc, log


@pytest.fixture(scope="module")
def html(book) -> Path:
    html_dir, rc, _ = book
    if rc != 0 or not html_dir.is_dir():
        pytest.fail("the book did not build; see test_book_builds_without_warnings", pytrace=False)
    return html_dir


def test_book_builds_without_warnings(book):
    html_dir, rc, log = book
    if rc == 0:
        return
    reports = sorted(html_dir.glob("reports/**/*.err.log")) + sorted(html_dir.glob("reports/**/*.log"))
    details = []
    for rep in dict.fromkeys(reports):
        details.append(f"----- {rep.relative_to(html_dir)} -----\n{rep.read_text(errors='replace')[-6000:]}")
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    # a failing cell (execute.raise_on_error) aborts the build: show the cell and its error first
    cells = [
        m.group(0).strip()
        for m in re.finditer(
            r"(\S*ExecutionError: /\S+)|An error occurred while executing the following cell:.*?"
            r"(?=^The above exception|\Z)",
            clean, flags=re.S | re.M,
        )
    ]
    warnings = [line for line in clean.splitlines() if re.search(r"WARNING|ERROR|Error:", line)
                and "IPKernelApp" not in line]
    pytest.fail(
        f"`jupyter-book build . -W -n --keep-going` exited with {rc}.\n"
        + ("----- failing notebook cells -----\n" + "\n".join(c[-4000:] for c in cells) + "\n" if cells else "")
        + ("----- warnings and errors -----\n" + "\n".join(warnings[-60:]) + "\n" if warnings else "")
        + f"----- last lines of the build log -----\n{clean[-5000:]}\n" + "\n".join(details),
        pytrace=False,
    )


def test_every_toc_page_is_built(html):
    missing = [p for p in PAGES if not (html / f"{p}.html").is_file()]
    assert not missing, f"pages in _toc.yml with no HTML output: {missing}"
    index = (html / "index.html").read_text()
    assert f"{PAGES[0]}.html" in index, "index.html does not redirect to the root page"


@pytest.fixture(scope="module")
def rendered(html, published) -> dict[str, str | Exception]:
    """docname -> DOM after scripts ran (or the exception that prevented it); the PDF and the
    download are in place first, since every page links to them."""
    chromium()

    def one(doc):
        try:
            return doc, dump_dom(html, doc)
        except Exception as exc:  # reported per page by test_page_renders
            return doc, exc

    with ThreadPoolExecutor(max_workers=BROWSER_JOBS) as pool:
        return dict(pool.map(one, PAGES))


def test_chromium_is_installed():
    proc = run_chromium(["--dump-dom", "about:blank"], timeout=60)
    assert proc.returncode == 0, f"headless Chromium does not start:\n{proc.stderr[-3000:]}"


# --------------------------------------------------------------------------- checks
def check_local_file(html_dir: Path, base: Path, url: str, what: str) -> tuple[Path | None, list[str]]:
    """Resolve a relative URL from page `base`; returns (file, problems)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    target = (base.parent / path).resolve() if path else base
    try:
        target.relative_to(html_dir.resolve())
    except ValueError:
        return None, [f"{what} {url!r} points outside the built book"]
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return None, [f"{what} {url!r}: {target.relative_to(html_dir.resolve())} does not exist"]
    return target, []


MAGIC = {
    ".png": [b"\x89PNG\r\n\x1a\n"], ".jpg": [b"\xff\xd8\xff"], ".jpeg": [b"\xff\xd8\xff"],
    ".gif": [b"GIF87a", b"GIF89a"], ".webp": [b"RIFF"],
}


def check_image(html_dir: Path, page: Path, src: str) -> list[str]:
    if src.startswith("data:"):
        head, _, payload = src.partition(",")
        if not payload.strip():
            return [f"image data URI is empty ({head})"]
        if ";base64" in head:
            try:
                raw = base64.b64decode(payload, validate=False)
            except (binascii.Error, ValueError) as exc:
                return [f"image data URI does not decode ({head}): {exc}"]
            if len(raw) < 16:
                return [f"image data URI holds only {len(raw)} bytes ({head})"]
        return []
    scheme = urlsplit(src).scheme
    if scheme or src.startswith("//"):
        return [f"image {src!r} is loaded from the network"]
    target, problems = check_local_file(html_dir, page, src, "image")
    if problems:
        return problems
    data = target.read_bytes()
    if not data:
        return [f"image {src!r} is an empty file"]
    magics = MAGIC.get(target.suffix.lower())
    if magics and not any(data.startswith(m) for m in magics):
        return [f"image {src!r} is not a valid {target.suffix} file"]
    if target.suffix.lower() == ".svg" and b"<svg" not in data[:4096]:
        return [f"image {src!r} is not an SVG file"]
    return []


def check_links(html_dir: Path, page_path: Path, dom: Page) -> list[str]:
    problems = []
    for href in dict.fromkeys(dom.links):
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or not href.strip():
            continue  # external (http, mailto, javascript, data): not checked offline
        if not parts.path and not parts.fragment:
            continue
        target, errs = check_local_file(html_dir, page_path, href, "link")
        if errs:
            problems += errs
            continue
        frag = unquote(parts.fragment)
        if frag and target.suffix == ".html":
            ids = dom.ids if target == page_path else static_page(target).ids
            if frag not in ids:
                where = target.relative_to(html_dir.resolve())
                problems.append(f"link {href!r}: no element with id {frag!r} in {where}")
    return problems


def check_resources(html_dir: Path, page_path: Path, dom: Page) -> list[str]:
    problems = []
    for tag, url in dict.fromkeys(dom.resources):
        if url.startswith("data:") or url.startswith("about:") or url.startswith("blob:"):
            continue
        if urlsplit(url).scheme or url.startswith("//"):
            problems.append(f"<{tag}> loads {url!r} from the network")
            continue
        if tag == "img":
            continue  # check_image
        problems += check_local_file(html_dir, page_path, url, f"<{tag}>")[1]
    return problems


NETWORK_REF = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object|track)\b[^>]*?\s(src|href|data|poster)\s*=\s*[\"']?(https?:)?//",
    re.I,
)
INLINE_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script>", re.I | re.S)
CSS_NETWORK = re.compile(r"(@import\s+(url\()?|url\()\s*[\"']?(https?:)?//", re.I)


def test_no_page_loads_from_the_network(html):
    """Every HTML file of the build (not only the toc pages) and every stylesheet."""
    problems = []
    for f in sorted(html.rglob("*.html")):
        text = f.read_text(errors="replace")
        for m in NETWORK_REF.finditer(text):
            snippet = text[m.start(): m.start() + 160].split(">")[0]
            problems.append(f"{f.relative_to(html)}: {snippet}>")
        for m in INLINE_SCRIPT.finditer(text):  # e.g. a loader URL written into page config
            for url in re.findall(r"https?://[^\s\"'<>]+", m.group(1)):
                problems.append(f"{f.relative_to(html)}: inline script mentions {url}")
    for f in sorted(html.glob("_static/**/*.css")):
        text = f.read_text(errors="replace")
        for m in CSS_NETWORK.finditer(text):
            problems.append(f"{f.relative_to(html)}: {text[m.start(): m.start() + 120]}")
    assert not problems, "network references in the built book:\n" + "\n".join(problems[:50])
    mathjax = html / "_static" / "mathjax" / "tex-mml-chtml.js"
    assert mathjax.is_file(), "MathJax was not copied into _static/mathjax (book/_ext/offline_mathjax.py)"


@pytest.mark.parametrize("docname", PAGES)
def test_page_renders(html, rendered, docname):
    result = rendered[docname]
    if isinstance(result, Exception):
        pytest.fail(str(result), pytrace=False)
    page_path = (html / f"{docname}.html").resolve()
    dom = Page(result)
    static = static_page(page_path)
    problems: list[str] = []

    report = dom.report
    if not report or not report.get("done"):
        problems.append(
            f"the page did not finish loading within the virtual time budget of {VIRTUAL_TIME_MS} ms "
            "(raise BOOK_VIRTUAL_TIME_MS?)"
        )
        report = report or {}

    # mathematics
    problems += [f"untypeset math: {m}" for m in untypeset_math(dom)]
    problems += [f"MathJax error: {e}" for e in dom.mjx_errors]
    if static.math_elements and dom.mjx < static.math_elements:
        problems.append(
            f"{static.math_elements} math elements in the HTML but {dom.mjx} typeset by MathJax"
        )

    # images: present on disk (or a non-empty data URI) and decoded by the browser
    for src in dict.fromkeys(dom.imgs):
        problems += check_image(html.resolve(), page_path, src)
    problems += [f"image not displayed by the browser: {s!r}" for s in report.get("broken_images", [])]

    # links, scripts, stylesheets
    problems += check_links(html.resolve(), page_path, dom)
    problems += check_resources(html.resolve(), page_path, dom)
    problems += [f"failed to load: {f}" for f in report.get("failed", [])]
    problems += [f"JavaScript error: {e}" for e in report.get("errors", [])]

    if problems:
        pytest.fail(f"{docname}.html:\n  " + "\n  ".join(problems), pytrace=False)


CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_page_reads_like_a_published_course(rendered, docname):
    """The course voice, code that fits its box, no traceback or build path, numbered and
    described figures sharp at 1280 px, animations that play (tests/reader_checks.py)."""
    result = rendered[docname]
    if isinstance(result, Exception):
        pytest.fail(str(result), pytrace=False)
    soup = BeautifulSoup(result, "html.parser")
    report = Page(result).report or {}
    problems = (reader_checks.narration(soup) + reader_checks.long_code_lines(soup)
                + reader_checks.tracebacks_and_paths(soup)
                + reader_checks.figures(soup, report.get("sizes", []))
                + reader_checks.animations(report.get("animations", [])))
    if problems:
        pytest.fail(f"{docname}.html:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def published(html) -> dict:
    """The rest of `make book` beside the website: the single-page build (outputs from the html
    build's jupyter-cache), its PDF and the course download, which every page links to."""
    out = html.parent.parent
    cmd = jupyter_book() + ["build", str(ROOT), "--builder", "singlehtml", "-W", "-n", "--keep-going",
                            "--path-output", str(out)]
    single = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                            stdin=subprocess.DEVNULL)
    pdf = html / "cnn-course.pdf"
    if single.returncode == 0:
        subprocess.run([sys.executable, str(ROOT / "book" / "pdf.py"), str(out / "_build" / "singlehtml"),
                        str(pdf)], check=True, timeout=900)
    subprocess.run([sys.executable, str(ROOT / "book" / "download.py"), str(html / "cnn-course.zip")],
                   check=True, timeout=600)
    return {"single": single, "pdf": pdf}


def test_the_whole_book_prints_to_one_pdf(html, published):
    """`make book`'s PDF: the single-page build executes nothing again, and Chromium's print of it
    has an outline with every chapter, math typeset, the figures."""
    import pypdf

    single = published["single"]
    assert single.returncode == 0, (single.stdout + single.stderr)[-5000:]
    assert "Executing notebook" not in single.stdout + single.stderr, "the single page executed again"
    reader = pypdf.PdfReader(published["pdf"])

    def squeeze(text):
        return re.sub(r"[\s#¶]", "", text)

    def titles(outline):
        for item in outline:
            yield from titles(item) if isinstance(item, list) else [squeeze(item.title)]

    outline = " | ".join(titles(reader.outline))
    chapters = [squeeze(BeautifulSoup((html / f"{doc}.html").read_text(), "html.parser").h1.get_text())
                for doc in CHAPTERS]
    missing = [title for title in chapters if title not in outline]
    assert len(reader.pages) > 100 and not missing, (len(reader.pages), missing, outline[:2000])
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "\\(" not in text and "\\[" not in text, "raw TeX in the PDF: MathJax did not run"
    images = sum(len(page.images) for page in reader.pages)
    figures = sum(len(static_page(html / f"{doc}.html").imgs) for doc in CHAPTERS)
    assert images >= 0.9 * figures, f"{images} images in the PDF, {figures} in the chapters"


def _chapter_to_show(rendered) -> str:
    chapters = [p for p in PAGES if p.startswith("notebooks/") and isinstance(rendered.get(p), str)]
    for want in (lambda d: d.mjx and d.imgs, lambda d: d.mjx, lambda d: True):
        for doc in chapters:
            if want(Page(rendered[doc])):
                return doc
    return next(p for p in PAGES if p != PAGES[0])


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("docname", ["notebooks/07_transposed_convolution", "notebooks/02_convolution"])
def test_figures_keep_their_shape_on_a_phone_and_a_laptop(html, published, docname, width):
    """On a 390 px phone the column narrows every figure: each keeps its aspect ratio, and an
    animation (its frame, slider and buttons) stays within the screen (a chapter with many
    figures, one with an animation)."""
    report = report_at_width(html, docname, width)
    assert len(report["sizes"]) >= 5, report["sizes"]
    assert reader_checks.squashed(report["sizes"]) == []
    assert all(a["overflow"] <= 0 for a in report["animations"]), report["animations"]


def test_screenshots(html, rendered):
    """The landing page and a chapter with math and a figure, for people to look at."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shots = {PAGES[0]: SCREENSHOT_DIR / "intro.png"}
    chapter = _chapter_to_show(rendered)
    shots[chapter] = SCREENSHOT_DIR / f"{Path(chapter).name}.png"

    def shoot(item):
        doc, png = item
        if png.exists():
            png.unlink()
        proc = run_chromium(["--window-size=1280,2400", f"--screenshot={png}", (html / f"{doc}.html").as_uri()])
        return doc, png, proc

    with ThreadPoolExecutor(max_workers=BROWSER_JOBS) as pool:
        results = list(pool.map(shoot, shots.items()))
    for doc, png, proc in results:
        assert proc.returncode == 0 and png.is_file() and png.stat().st_size > 10_000, (
            f"no screenshot of {doc}: {proc.stderr[-2000:]}"
        )
