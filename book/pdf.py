"""Print the single-page build of the book to one PDF with headless Chromium.

    python book/pdf.py _build/singlehtml _build/html/cnn-course.pdf

Chromium runs the page's MathJax before it prints (the virtual time budget lets it finish), and
writes the headings as the PDF's outline, its table of contents in any PDF reader.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Debian's Chromium, offline: without the background-networking flags it keeps trying to reach
# Google's hosts (../shared/TOOLCHAIN_NOTES.md).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-pdf-header-footer", "--generate-pdf-document-outline", "--virtual-time-budget=60000"]

# The single page is a web page: hide its navigation and buttons, keep figures whole on a page.
PRINT_CSS = """
@media print {
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .prev-next-area,
  .bd-footer, .bd-footer-article, .bd-header-announcement, .toggle-hidden, button { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  figure, img, table, .cell_output { break-inside: avoid; }
  h1 { break-before: page; }
}
"""


def main(build: Path, target: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: run `make system`")
    # index.html redirects to the page that holds the whole book (the root document), whose
    # links are written relative to the build's root, wherever the page itself lies.
    redirect = re.search(r'url=([^"]+)"', (build / "index.html").read_text(encoding="utf-8"))
    page = build / (redirect.group(1) if redirect else "index.html")
    html = page.read_text(encoding="utf-8")
    if "</head>" not in html:
        raise SystemExit(f"{page} is not an HTML page with a <head>")
    printable = build / "print.html"
    printable.write_text(html.replace("</head>", f"<style>{PRINT_CSS}</style></head>", 1),
                         encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}",
                               f"--print-to-pdf={target.resolve()}", printable.resolve().as_uri()],
                              capture_output=True, text=True, timeout=600)
    printable.unlink()
    if proc.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        raise SystemExit(f"chromium could not print {page} (exit {proc.returncode}):\n"
                         + proc.stderr[-3000:])
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python book/pdf.py SINGLEHTML_BUILD_FOLDER OUT.pdf")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
