"""Reports rendered from the store alone."""
from __future__ import annotations

from pathlib import Path


def write_report(run) -> Path:
    """Write ``<out>/<run-id>/report.md`` for a Run; returns its path."""
    from rtbench.report.markdown import render

    d = run.report_dir
    d.mkdir(parents=True, exist_ok=True)
    path = d / "report.md"
    path.write_text(render(run, run.to_pandas()), encoding="utf-8")
    return path
