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
      var right = Math.max.apply(null, Array.prototype.map.call(
        a.querySelectorAll('img, input, button'), function (e) { return e.getBoundingClientRect().right; }));
      report.animations.push({before: slider ? Number(slider.value) : null, play: !!play,
                              visible: !!(r && r.width > 0 && r.height > 0),
                              // past the edge of its cell's output, where the page clips it
                              overflow: Math.round(right - (a.closest('.cell_output') || document.body)
                                                   .getBoundingClientRect().right)});
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


def dump_dom(html_dir: Path, docname: str) -> str:
    """The DOM of a page after its scripts ran, opened from disk like a reader would."""
    page = html_dir / f"{docname}.html"
    probe = page.with_name(f".probe-{page.name}")  # same folder: relative links resolve alike
    source = page.read_text()
    probe.write_text(source.replace("<head>", "<head>" + PROBE, 1))
    try:
        proc = run_chromium(["--window-size=1280,2000", "--dump-dom", probe.as_uri()])
    finally:
        probe.unlink()
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium failed on {docname} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def report_at_width(html_dir: Path, docname: str, width: int, timeout: float = 60) -> dict:
    """The probe's report of a page in a viewport ``width`` CSS pixels wide. Chromium's window is
    never narrower than 500 px, so a phone's width is set through the DevTools protocol
    (Emulation.setDeviceMetricsOverride), and the page runs in real time until the probe is done."""
    import time
    import urllib.request

    import websocket

    page = html_dir / f"{docname}.html"
    probe = page.with_name(f".probe-{width}-{page.name}")
    probe.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium(), *flags, f"--user-data-dir={profile}",
                                 "--remote-debugging-port=0", "about:blank"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            port = next(int(line.split("127.0.0.1:")[1].split("/")[0]) for line in proc.stderr
                        if "DevTools listening on" in line)
            target = next(t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                          if t["type"] == "page")
            ws = websocket.create_connection(target["webSocketDebuggerUrl"], suppress_origin=True,
                                             timeout=timeout)
            calls = iter(range(1, 1_000_000))

            def call(method, **params):
                n = next(calls)
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv())
                    if reply.get("id") == n:
                        return reply.get("result", {})

            call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                 mobile=width < 500)
            call("Page.navigate", url=probe.as_uri())
            read = (f"(function () {{ var d = document.getElementById('{CHECK_ID}'); "
                    "return d ? d.getAttribute('data-report') : null; })()")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = call("Runtime.evaluate", expression=read, returnByValue=True)["result"].get("value")
                if value:
                    return json.loads(value)
                time.sleep(0.25)
            raise RuntimeError(f"{docname} at {width} px: the probe did not finish in {timeout} s")
        finally:
            proc.kill()
            proc.wait()
            probe.unlink(missing_ok=True)
