"""The report of a comparison of two runs: compare.md (+ images), a self-contained compare.html, compare.json.

Built as blocks (``report.blocks``) and rendered by the run report's Markdown and HTML renderers: the verdict,
the method, the environment diff, the regressions, the verdict table, a before/after plot per runtime and
precision (latency against batch, both runs with their intervals), and the cells of one run only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rtbench.comparison import ALPHA, METHOD, CellComparison, Comparison
from rtbench.errors import UserError
from rtbench.report import parse_formats, write_documents
from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.report.export import _plain
from rtbench.report.i18n import translator
from rtbench.report.plots import new_figure, png
from rtbench.report.table import _ms
from rtbench.results import CellResult

FORMATS = ("md", "html", "json")
DEFAULT_FORMATS = ("md", "html")
FILES = {"md": "compare.md", "html": "compare.html", "json": "compare.json"}


def verdict_name(verdict: str, _: Callable[..., str]) -> str:
    return _("cmp_v_" + verdict.replace(" ", "_"))


def _cell_ms(c: CellResult | None) -> str:
    if c is None or (c.measured and "ci_high_ms" not in c.stats):
        return "–"
    return _ms({"status": c.status.value, **c.stats})


def _ratio(c: CellComparison) -> str:
    t = c.timing
    return "–" if t is None else f"{t.ratio:.3f} ({t.low:.3f}–{t.high:.3f})"


def cell_table(cells: list[CellComparison], _: Callable[..., str]) -> Table:
    """Runtime, precision, size, batch, both estimates, NEW/BASE with its CI, verdict (bold for a regression), why."""
    head = [_("col_runtime"), _("col_precision"), _("col_size"), _("col_batch"), _("cmp_col_ms_base"),
            _("cmp_col_ms_new"), _("cmp_col_ratio"), _("cmp_col_verdict"), _("cmp_col_why")]
    t = Table(head, [])
    for c in cells:
        runtime, precision, size, batch = c.key
        if c.regression:
            t.bold.add((len(t.rows), 7))
        t.rows.append([runtime, precision, f"{size}x{size}", str(batch), _cell_ms(c.base), _cell_ms(c.new), _ratio(c),
                       verdict_name(c.verdict, _), c.reason(_)])
    return t


def outcome_text(cmp: Comparison, _: Callable[..., str]) -> str:
    """One sentence: not comparable (naming the fields), regressions, undecided cells, or none of those."""
    o = cmp.outcome()
    if o == "not comparable":
        keys = ",".join(dict.fromkeys(f.key for f in cmp.fields if f.blocking))
        return _("cmp_outcome_not_comparable", keys=keys)
    if o == "regression":
        return _("cmp_outcome_regression", n=len(cmp.regressions), t=cmp.threshold_pct)
    if o == "inconclusive":
        return _("cmp_outcome_inconclusive", n=len(cmp.undecided), t=cmp.threshold_pct)
    return _("cmp_outcome_pass", t=cmp.threshold_pct)


def counts_text(cmp: Comparison, _: Callable[..., str]) -> str:
    return _("cmp_counts", counts=", ".join(f"{n} {verdict_name(v, _)}" for v, n in sorted(cmp.counts().items())))


def env_blocks(cmp: Comparison, _: Callable[..., str]) -> list[Block]:
    """The fields that differ, each with its effect: not comparable, allowed, or shown only."""
    if not cmp.fields:
        return [Para(_("cmp_env_same"))]
    head = [_("cmp_col_field"), "BASE", "NEW", _("cmp_col_speed"), _("cmp_col_effect"), _("cmp_col_cells")]
    t = Table(head, [])
    for f in cmp.fields:
        if f.blocking:
            effect = "cmp_eff_blocking"
        elif f.speed and f.allowed:
            effect = "cmp_eff_allowed"
        elif f.speed:
            effect = "cmp_eff_unrecorded"
        else:
            effect = "cmp_eff_shown"
        if f.blocking:
            t.bold.add((len(t.rows), 4))
        cells = ", ".join(f.cells[:4]) + (f" (+{len(f.cells) - 4})" if len(f.cells) > 4 else "")
        t.rows.append([f"`{f.key}`", f.base if f.base is not None else _("cmp_not_recorded"),
                       f.new if f.new is not None else _("cmp_not_recorded"), _("cmp_yes" if f.speed else "cmp_no"),
                       _(effect), cells])
    return [t, Para(_("cmp_env_note"))]


def method_items(cmp: Comparison, _: Callable[..., str]) -> list[str]:
    up = 1 + cmp.threshold
    return [_("cmp_m_ratio"), _("cmp_m_ci"),
            _("cmp_m_verdicts", t=cmp.threshold_pct, up=up, down=1 / up),
            _("cmp_m_holm", m=cmp.tested, up=up), _("cmp_m_status")]


def plot_blocks(cmp: Comparison, _: Callable[..., str]) -> list[Block]:
    """A before/after plot per runtime and precision: latency against batch, one colour per size."""
    groups: dict[tuple, list[CellComparison]] = {}
    for c in cmp.cells:
        groups.setdefault(c.key[:2], []).append(c)
    out: list[Block] = []
    for (runtime, precision), cells in groups.items():
        fig = before_after(cells, _("cmp_p_title", runtime=runtime, precision=precision), _)
        if fig is not None:
            slug = re.sub(r"[^A-Za-z0-9-]+", "-", f"{runtime}-{precision}")
            out.append(Image(f"images/compare_{slug}.png", fig.axes[0].get_title(), png(fig)))
    return out


def before_after(cells: list[CellComparison], title: str, _: Callable[..., str]):
    """Latency per call against batch: BASE dashed, NEW solid, one colour per size, 95% CI error bars."""
    fig, (ax,) = new_figure(width=8.0, height=4.5)
    sizes = sorted({c.key[2] for c in cells})
    drawn, values = 0, []
    for i, size in enumerate(sizes):
        for side, style in (("base", "--"), ("new", "-")):
            pts = sorted((c.key[3], r) for c in cells if c.key[2] == size
                         and (r := getattr(c, side)) is not None and r.measured and r.ms)
            if not pts:
                continue
            x = np.array([b for b, _r in pts])
            y = np.array([r.ms for _b, r in pts])
            lo = np.array([r.stats.get("ci_low_ms", r.ms) for _b, r in pts])
            hi = np.array([r.stats.get("ci_high_ms", r.ms) for _b, r in pts])
            ax.errorbar(x + (0.0 if side == "base" else 0.04 * x), y, yerr=np.vstack([y - lo, hi - y]).clip(0),
                        linestyle=style, marker="o" if side == "new" else "s", capsize=3, color=f"C{i % 10}",
                        label=_("cmp_p_label", side=side.upper(), size=size))
            drawn += 1
            values += list(y)
    if not drawn:
        return None
    if max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    batches = sorted({c.key[3] for c in cells})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set(title=title, xlabel=_("ax_batch"), ylabel=_("ax_ms"))
    ax.legend(fontsize=8, ncol=2)
    return fig


def build(cmp: Comparison, _: Callable[..., str], plots: bool = True) -> list[Block]:
    """Every block of the comparison report, in order."""
    blocks: list[Block] = [Heading(1, _("cmp_title", base=cmp.base.id, new=cmp.new.id))]
    for side, run, source in (("BASE", cmp.base, cmp.base_source), ("NEW", cmp.new, cmp.new_source)):
        s = run.sweep
        blocks.append(Para(_("cmp_run_line", side=side, id=run.id, source=source, model=s.model, device=s.device,
                             boundary=s.boundary, created=run.created, status=run.status)))
    blocks += [Heading(2, _("cmp_h_verdict")), Para(outcome_text(cmp, _)), Para(counts_text(cmp, _)),
               Heading(2, _("cmp_h_method")), Bullets(method_items(cmp, _)),
               Heading(2, _("cmp_h_env")), *env_blocks(cmp, _)]
    if cmp.regressions:
        blocks += [Heading(2, _("cmp_h_regressions")), cell_table(cmp.regressions, _)]
    both = [c for c in cmp.cells if c.base is not None and c.new is not None]
    if both:
        blocks += [Heading(2, _("cmp_h_cells")), cell_table(both, _)]
    if plots and (images := plot_blocks(cmp, _)):
        blocks += [Heading(2, _("cmp_h_plots")), Para(_("cmp_plot_note")), *images]
    one = [c for c in cmp.cells if c.base is None or c.new is None]
    if one:
        head = [_("col_runtime"), _("col_precision"), _("col_size"), _("col_batch"), _("cmp_col_verdict")]
        rows = [[c.key[0], c.key[1], f"{c.key[2]}x{c.key[2]}", str(c.key[3]), c.reason(_)] for c in one]
        blocks += [Heading(2, _("cmp_h_one_side")), Table(head, rows)]
    return blocks


def to_dict(cmp: Comparison) -> dict:
    """Everything the report says, for machines: both runs, the method, the environment diff, every cell."""
    df = cmp.to_pandas()

    def side(run, source):
        return {"id": run.id, "source": source, "created": run.created, "status": run.status,
                "model": run.sweep.model, "device": run.sweep.device, "boundary": run.sweep.boundary}

    return _plain({"base": side(cmp.base, cmp.base_source), "new": side(cmp.new, cmp.new_source),
                   "threshold_pct": cmp.threshold_pct, "ci_method": METHOD,
                   "holm": {"cells": cmp.tested, "alpha_one_sided": ALPHA}, "allowed": list(cmp.allowed),
                   "comparable": cmp.comparable,
                   "outcome": cmp.outcome(), "counts": cmp.counts(), "fields": [f.to_dict() for f in cmp.fields],
                   "cells": df.to_dict(orient="records")})


def write_comparison(cmp: Comparison, out_dir: Path | str | None = None, lang: str = "en",
                     formats: str | Iterable[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write compare.md (+ images/), compare.html and/or compare.json into ``out_dir`` (default
    ``cmp.default_report_dir``); returns the files written."""
    _ = translator(lang)
    fmts = parse_formats(formats, FORMATS)
    d = Path(out_dir) if out_dir is not None else cmp.default_report_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the comparison to {d} ({e.strerror}): pass a writable --report-dir") from None
    written = []
    if "md" in fmts or "html" in fmts:
        written += write_documents(build(cmp, _), d, fmts, lang, FILES)
    if "json" in fmts:
        written.append(d / FILES["json"])
        written[-1].write_text(json.dumps(to_dict(cmp), indent=1, allow_nan=False, default=str), encoding="utf-8")
    return written

