"""The report as a list of blocks, built once and rendered to Markdown and to HTML.

Text may use two inline marks, ``**bold**`` and ```code```; the HTML renderer escapes the text first,
then turns those marks into tags.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    level: int
    text: str
    kind: str = "heading"


@dataclass
class Para:
    text: str
    kind: str = "para"


@dataclass
class Bullets:
    items: list[str]
    kind: str = "bullets"


@dataclass
class Table:
    """Rows of already formatted strings; ``bold`` holds (row, column) positions to emphasise."""

    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    kind: str = "table"


@dataclass
class Image:
    """A plot: ``path`` relative to the report folder, ``png`` its bytes (embedded in the HTML)."""

    path: str
    alt: str
    png: bytes = field(repr=False, default=b"")
    kind: str = "image"


Block = Heading | Para | Bullets | Table | Image
