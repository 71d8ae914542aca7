"""Reports rendered from the store alone: report.md, report.html (self-contained), images, CSV and JSON."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rtbench.errors import UserError

FORMATS = ("md", "html", "csv", "json")
DEFAULT_FORMATS = ("md", "html")
REPORT_FILES = {"md": "report.md", "html": "report.html", "csv": "cells.csv", "json": "cells.json"}


def parse_formats(formats: str | Iterable[str], choices: tuple[str, ...] = FORMATS) -> tuple[str, ...]:
    """'md,html' (or an iterable) -> a tuple of known formats; an unknown one raises UserError naming the choices."""
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)]
    items = [f for f in items if f]
    bad = [f for f in items if f not in choices]
    if bad or not items:
        raise UserError(f"unknown report format {', '.join(bad) or '(none)'!s}: use a comma-separated list of "
                        f"{', '.join(choices)}, e.g. --format md,html")
    return tuple(dict.fromkeys(items))


def write_documents(blocks, d: Path, fmts: tuple[str, ...], lang: str, files: dict[str, str]) -> list[Path]:
    """Render report blocks into ``d``: ``files["md"]`` with ``images/*.png`` and/or ``files["html"]`` (images
    embedded), as ``fmts`` asks; returns the files written."""
    from rtbench.report.blocks import Image
    from rtbench.report.html import to_html
    from rtbench.report.markdown import to_markdown

    written: list[Path] = []
    if "md" in fmts:
        (d / "images").mkdir(exist_ok=True)
        for b in blocks:
            if isinstance(b, Image):
                (d / b.path).write_bytes(b.png)
        written.append(d / files["md"])
        written[-1].write_text(to_markdown(blocks), encoding="utf-8")
    if "html" in fmts:
        written.append(d / files["html"])
        written[-1].write_text(to_html(blocks, lang), encoding="utf-8")
    return written


def write_report(run, *, lang: str = "en", formats: str | Iterable[str] = DEFAULT_FORMATS,
                 out_dir: Path | str | None = None) -> Path:
    """Write the report of a Run into ``<out>/<run-id>/`` (or ``out_dir``); returns the main file's path.

    ``formats``: any of md (report.md + images/*.png), html (report.html, images embedded), csv (cells.csv),
    json (cells.json, samples included). ``lang``: en or ru.
    """
    from rtbench.report import document, export
    from rtbench.report.i18n import translator

    _ = translator(lang)
    fmts = parse_formats(formats)
    d = Path(out_dir) if out_dir is not None else run.report_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the report to {d} ({e.strerror}): pass a writable --out folder") from None
    df = run.to_pandas()
    written: list[Path] = []
    if "md" in fmts or "html" in fmts:
        written += write_documents(document.build(run, df, _), d, fmts, lang, REPORT_FILES)
    if ("md" in fmts or "html" in fmts) and (run.schedule or {}).get("load"):  # a load test's: report/load.py
        from rtbench.report.load import write_load_report

        written += write_load_report(run.id, run.out_dir, fmts, d)
    if "csv" in fmts:
        written.append(export.write_csv(df, d / REPORT_FILES["csv"]))
    if "json" in fmts:
        written.append(export.write_json(run, df, d / REPORT_FILES["json"]))
    return written[0]
