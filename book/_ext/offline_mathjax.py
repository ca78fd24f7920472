"""Serve MathJax 3 from the built book instead of a CDN.

The `mathjax` package (installed by the PyPI wheel ``django-static-mathjax``) ships the
MathJax 3 distribution as static files. On ``build-finished`` this extension copies the
combined component ``es5/tex-mml-chtml.js`` and the folders it loads lazily (CommonHTML
fonts, TeX extensions for autoload, the menu, accessibility, adaptors and the speech rule
engine) into ``<outdir>/_static/mathjax/``. With ``mathjax_path: mathjax/tex-mml-chtml.js``
in the Sphinx config, every page then loads MathJax from ``_static`` and the book renders
its mathematics with no network.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: what the combined component needs next to it, relative to MathJax's es5/ folder
PAYLOAD = (
    "tex-mml-chtml.js",
    "output/chtml/fonts",
    "input/tex/extensions",
    "ui",
    "a11y",
    "adaptors",
    "sre",
)


def mathjax_source() -> Path:
    """The es5/ folder of the installed MathJax 3 distribution."""
    try:
        import mathjax  # provided by django-static-mathjax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ExtensionError(
            "offline_mathjax: the 'mathjax' package is missing; "
            "install django-static-mathjax (it is in the project's dev extra)"
        ) from exc
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"offline_mathjax: no MathJax 3 distribution found at {es5}")
    return es5


def _copy_file(src: Path, dst: Path) -> bool:
    if dst.is_file() and filecmp.cmp(src, dst, shallow=True):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return True


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src_root = mathjax_source()
    dst_root = Path(app.outdir) / "_static" / "mathjax"
    copied = 0
    for rel in PAYLOAD:
        src = src_root / rel
        if src.is_file():
            copied += _copy_file(src, dst_root / rel)
        elif src.is_dir():
            for f in src.rglob("*"):
                if f.is_file():
                    copied += _copy_file(f, dst_root / rel / f.relative_to(src))
        else:
            raise ExtensionError(f"offline_mathjax: {src} is missing from the MathJax distribution")
    logger.info("offline_mathjax: MathJax 3 in %s (%d files updated)", dst_root, copied)


def check_config(app: Sphinx, config) -> None:
    path = str(getattr(config, "mathjax_path", "") or "")
    if "://" in path or path.startswith("//"):
        logger.warning(
            "offline_mathjax: mathjax_path %r points to the network; "
            "set it to 'mathjax/tex-mml-chtml.js'",
            path,
            type="offline_mathjax",
        )
    mathjax_source()  # fail early, before hours of notebook execution


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", check_config)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
