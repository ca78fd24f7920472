"""The browser side of the book's tests: an HTML parser for what the checks need, and headless
Chromium opening a page from disk with a probe that reports what happened after its scripts ran
(failed loads, JavaScript errors, image sizes, animations played)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

import pytest

VIRTUAL_TIME_MS = int(os.environ.get("BOOK_VIRTUAL_TIME_MS", "10000"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--virtual-time-budget={VIRTUAL_TIME_MS}",
]
CHECK_ID = "book-test-report"


# --------------------------------------------------------------------------- HTML parsing
RESOURCE_ATTRS = {
    "script": ("src",), "link": ("href",), "img": ("src",), "iframe": ("src",),
    "source": ("src",), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
    "object": ("data",), "track": ("src",), "input": ("src",),
}
SKIP_TEXT = {"script", "style", "pre", "code", "textarea", "mjx-container", "kbd", "samp", "svg", "noscript"}


class Page(HTMLParser):
    """What the checks need from one HTML document."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []  # <a href>
        self.resources: list[tuple[str, str]] = []  # (tag, url)
        self.imgs: list[str] = []
        self.text: list[str] = []
        self.math_elements = 0  # Sphinx's math markup (before MathJax)
        self.mjx = 0
        self.mjx_errors: list[str] = []
        self.report: dict | None = None
        self._skip = 0
        self._red_mtext = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        cls = (a.get("class") or "").split()
        if "math" in cls and tag in ("span", "div"):
            self.math_elements += 1
        if tag == "mjx-container":
            self.mjx += 1
        if tag == "mjx-merror" or "data-mjx-error" in a:
            self.mjx_errors.append(a.get("data-mjx-error") or a.get("title") or "MathJax error")
        # MathJax's `noundefined` package shows an unknown macro as red text in the MathML
        self._red_mtext = tag == "mtext" and a.get("mathcolor") == "red"
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        for attr in RESOURCE_ATTRS.get(tag, ()):
            if a.get(attr):
                self.resources.append((tag, a[attr]))
        if tag == "img" and a.get("src") is not None:
            self.imgs.append(a["src"])
        if tag == "div" and a.get("id") == CHECK_ID:
            self.report = json.loads(a.get("data-report") or "{}")
        if tag in SKIP_TEXT:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in SKIP_TEXT and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if self._red_mtext and data.startswith("\\"):
            self.mjx_errors.append(f"undefined control sequence {data}")
        self._red_mtext = False
        if not self._skip:
            self.text.append(data)


@lru_cache(maxsize=None)
def static_page(path: Path) -> Page:
    return Page(path.read_text(errors="replace"))


RAW_TEX = [
    (re.compile(r"\\\(.{0,80}"), r"\( ... \)"),
    (re.compile(r"\\\[.{0,80}"), r"\[ ... \]"),
    (re.compile(r"\\begin\{.{0,80}"), r"\begin{...}"),
    (re.compile(r"(?<![\\\w])\$\$?[^\s$][^$]{0,200}?\$"), "$ ... $"),
]


def untypeset_math(page: Page) -> list[str]:
    text = " ".join(" ".join(page.text).split())
    found = []
    for rx, what in RAW_TEX:
        found += [f"{what}: {m.group(0)[:100]!r}" for m in rx.finditer(text)]
    return found


# --------------------------------------------------------------------------- browser
# Injected first into <head> of a copy of each page: records resources that fail to load and
# uncaught errors, then, once the page and MathJax's first typeset are done, writes a report
# with the images the browser could not decode into a <div> that --dump-dom serializes.
PROBE = """<script>
(function () {
  var report = {errors: [], failed: [], broken_images: [], images: 0, done: false};
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) {
      report.failed.push((t.tagName || '').toLowerCase() + ' ' + (t.getAttribute('src') || t.getAttribute('href')));
    } else {
      report.errors.push(String(e.message) + ' @ ' + (e.filename || '') + ':' + (e.lineno || ''));
    }
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    report.errors.push('unhandled rejection: ' + String(e.reason));
  });
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('img[loading="lazy"]').forEach(function (im) { im.loading = 'eager'; });
  });
  // Press Play on every matplotlib animation, and read its frame slider two seconds later.
  function playAnimations(done) {
    var anims = document.querySelectorAll('div.animation');
    report.animations = [];
    anims.forEach(function (a) {
      var slider = a.querySelector('input.anim-slider');
      var play = a.querySelector('button[title="Play"]');
      var r = play ? play.getBoundingClientRect() : null;
      report.animations.push({before: slider ? Number(slider.value) : null, play: !!play,
                              visible: !!(r && r.width > 0 && r.height > 0)});
      if (play) play.click();
    });
    if (!anims.length) return done();
    setTimeout(function () {
      anims.forEach(function (a, i) {
        var slider = a.querySelector('input.anim-slider');
        report.animations[i].after = slider ? Number(slider.value) : null;
      });
      done();
    }, 2000);
  }
  function finish() {
    var imgs = document.querySelectorAll('img');
    report.images = imgs.length;
    report.sizes = [];
    imgs.forEach(function (im) {
      if (!im.complete || im.naturalWidth === 0) {
        report.broken_images.push((im.getAttribute('src') || '').slice(0, 200));
      }
      var box = im.getBoundingClientRect();
      report.sizes.push([(im.getAttribute('src') || '').slice(-200), im.naturalWidth,
                         Math.round(box.width), !!im.closest('.animation'), im.naturalHeight,
                         Math.round(box.height)]);
    });
    report.done = true;
    var div = document.createElement('div');
    div.id = '%s';
    div.hidden = true;
    div.setAttribute('data-report', JSON.stringify(report));
    document.body.appendChild(div);
  }
  window.addEventListener('load', function () {
    var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    (mj || Promise.resolve()).then(function () { setTimeout(function () { playAnimations(finish); }, 200); },
      function (err) { report.errors.push('MathJax: ' + err); finish(); });
  });
})();
</script>""" % CHECK_ID


def chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        pytest.fail(
            "Chromium is not installed, so the rendered book cannot be checked. "
            "Run `make system` (apt-get install chromium) and try again.",
            pytrace=False,
        )
    return exe


def run_chromium(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )


def dump_dom(html_dir: Path, docname: str, width: int = 1280) -> str:
    """The DOM of a page after its scripts ran, opened from disk like a reader would, in a
    window ``width`` pixels wide."""
    page = html_dir / f"{docname}.html"
    probe = page.with_name(f".probe-{page.name}")  # same folder: relative links resolve alike
    source = page.read_text()
    probe.write_text(source.replace("<head>", "<head>" + PROBE, 1))
    try:
        proc = run_chromium([f"--window-size={width},2000", "--dump-dom", probe.as_uri()])
    finally:
        probe.unlink()
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium failed on {docname} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout
