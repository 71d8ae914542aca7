"""report.html: one self-contained file (images embedded as base64, no network), every string escaped."""
from __future__ import annotations

import base64
import re

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from rtbench.report.blocks import Block, Heading

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> Markup:
    """Escape ``text``, then turn its ``**bold**`` and ```code``` marks into tags."""
    safe = str(escape(text))
    safe = _BOLD.sub(r"<strong>\1</strong>", safe)
    return Markup(_CODE.sub(r"<code>\1</code>", safe))


def _env() -> Environment:
    env = Environment(loader=PackageLoader("rtbench.report", "templates"), autoescape=select_autoescape(["j2", "html"]),
                      keep_trailing_newline=True)
    env.filters["inline"] = inline
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env


def to_html(blocks: list[Block], lang: str = "en") -> str:
    """The whole report as one HTML document."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "rtbench report")
    return _env().get_template("report.html.j2").render(blocks=blocks, lang=lang, title=title)
