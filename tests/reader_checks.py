"""What a reader meets on a chapter page, as checks over its DOM (used by test_book.py).

Each function takes the page parsed by BeautifulSoup (after Chromium ran its scripts) and
returns a list of problems, empty when the page is fine.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

MAX_CODE_LINE = 88
MIN_PIXELS_PER_SHOWN_PIXEL = 150 / 96    # a PNG of at least 150 dpi, shown at 96 CSS px per inch

# Prose that narrates the source documents instead of teaching ("as the notes say ...").
NARRATION = re.compile(
    r"\b(the (cnn |bahng |week 9 |course |lecture )?notes|the (cnn )?blog|the (convolution )?posts?"
    r"|bahng|week 9|the seeds?|seed documents?|the sources|source documents?|the documents)\b",
    re.I,
)
MACHINE_PATH = re.compile(r"(/(?:work|tmp|home|root|usr|opt|var)/[\w.+-]+|site-packages|\.venv/)")


def main_text(soup: BeautifulSoup) -> BeautifulSoup:
    return soup.find("main") or soup.body or soup


def narration(soup: BeautifulSoup) -> list[str]:
    """Mentions of the source documents in the prose, citations (links to the bibliography) and
    code left out; a chapter may name them once, e.g. in a closing note."""
    article = BeautifulSoup(str(main_text(soup)), "html.parser")   # a copy: tags are removed below
    for tag in article.select("pre, code, script, style, mjx-container, .cell_input"):
        tag.decompose()
    for citation in article.select('.bibtex-citation, a[href*="bibliography.html#"]'):
        citation.decompose()
    text = " ".join(article.get_text(" ").split())
    found = [text[max(0, m.start() - 50): m.end() + 30] for m in NARRATION.finditer(text)]
    return [f"{len(found)} mentions of the source documents (at most 1): ..." + " | ".join(found)]\
        if len(found) > 1 else []


def long_code_lines(soup: BeautifulSoup) -> list[str]:
    problems = []
    for pre in soup.select(".cell_input pre"):
        for line in pre.get_text().splitlines():
            if len(line) > MAX_CODE_LINE:
                problems.append(f"code line of {len(line)} characters: {line[:60]}...")
    return problems


def tracebacks_and_paths(soup: BeautifulSoup) -> list[str]:
    problems = []
    for out in soup.select(".cell_output"):
        text = out.get_text()
        if "Traceback (most recent call last)" in text or out.select(".highlight-ipythontb"):
            problems.append(f"a traceback on the page: {' '.join(text.split())[:120]}")
    text = main_text(soup).get_text(" ")
    for m in dict.fromkeys(MACHINE_PATH.findall(text)):
        problems.append(f"a path of the machine that built the page: {m}")
    return problems


def figures(soup: BeautifulSoup, sizes: list[list]) -> list[str]:
    """Every image of a cell output is a numbered figure with alt text, sharp at 1280 px.
    `sizes` holds the probe's [src, natural width, shown width, in an animation] per image."""
    problems = []
    for img in soup.select(".cell_output img"):
        if img.find_parent(class_="animation"):
            continue
        src = img.get("src", "")
        figure = img.find_parent("figure")
        number = figure.select_one(".caption-number") if figure else None
        if number is None:
            problems.append(f"figure without a numbered caption: {src[-40:]}")
        alt = (img.get("alt") or "").strip()
        if len(alt) < 15 or re.search(r"\.(png|svg|jpe?g)$|[0-9a-f]{32}", alt):
            problems.append(f"figure {number.get_text() if number else src[-40:]} has no alt text "
                            f"saying what it shows (alt={alt[:40]!r})")
    for src, natural, shown, animated, *_ in sizes:
        if not animated and shown and natural / shown < MIN_PIXELS_PER_SHOWN_PIXEL:
            problems.append(f"image shown at {shown} px from {natural} px "
                            f"(under 150 dpi): {src[-40:]}")
    return problems


def squashed(sizes: list[list]) -> list[str]:
    """Figures whose shown shape differs from their picture's (a fixed height in a narrowed
    column). `sizes`: the probe's [src, natural w, shown w, animated, natural h, shown h]."""
    return [f"{src[-40:]}: {natural_w}x{natural_h} shown at {shown_w}x{shown_h}"
            for src, natural_w, shown_w, animated, natural_h, shown_h in sizes
            if not animated and shown_w and natural_w
            and abs((shown_h / shown_w) / (natural_h / natural_w) - 1) > 0.03]


def animations(report_animations: list[dict]) -> list[str]:
    problems = []
    for i, anim in enumerate(report_animations, 1):
        if not anim.get("play") or not anim.get("visible"):
            problems.append(f"animation {i}: no visible play button")
        elif anim.get("after") == anim.get("before"):
            problems.append(f"animation {i}: did not advance after Play was clicked "
                            f"(frame {anim.get('before')})")
    return problems
