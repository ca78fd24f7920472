"""Strip CDN references that notebook outputs bring into the pages.

Matplotlib's ``Animation.to_jshtml()`` (used for the chapters' animations) writes
``<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/...">``
into its output for the icons of its play/pause buttons. Offline that request fails; the
theme already loads Font Awesome from ``_static`` (``scripts/fontawesome.js``, which also
knows the old ``fa fa-play`` names), so the link is dropped from raw HTML outputs here.
Anything else from a CDN is left alone, and the book test reports it.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

CDN_STYLESHEETS = re.compile(
    r"<link\b[^>]*\bhref=[\"']?https?://maxcdn\.bootstrapcdn\.com/font-awesome/[^>]*>\s*",
    re.I,
)


def strip_cdn_links(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for raw in list(doctree.findall(nodes.raw)):
        if "html" not in raw.get("format", "").split():
            continue
        text = raw.astext()
        new = CDN_STYLESHEETS.sub("", text)
        if new != text:
            raw.replace_self(nodes.raw(new, new, **{k: v for k, v in raw.attributes.items() if k != "ids"}))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", strip_cdn_links)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
