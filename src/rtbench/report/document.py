"""Builds the report's blocks from a Run and its DataFrame: method, warnings, tables, plots, conclusions."""
from __future__ import annotations

import re
from typing import Callable, Iterator

import pandas as pd

from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.report.markdown import MEASURED, method_lines
from rtbench.report.narrative import conclusion_blocks
from rtbench.report.plots import plot_group, png
from rtbench.report.table import seed_rows, telemetry_rows

GROUP = ["precision", "device", "boundary"]


def groups(df: pd.DataFrame) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """The cells of each precision, device and boundary, in run order."""
    if len(df):
        yield from df.groupby(GROUP, sort=False)


def group_slug(key: tuple) -> str:
    """A file-name-safe prefix for one group's images, e.g. ``fp32_cuda0_compute``."""
    return "_".join(re.sub(r"[^A-Za-z0-9-]+", "", str(k)) for k in key)


def fairness_items(run, df: pd.DataFrame, _: Callable[..., str]) -> list[str]:
    """The run's fairness warnings, each with its fix."""
    from rtbench.fairness import fairness_warnings

    return [f"**{w.code}**: {w.message}" + (f" — {_('fix')}: {w.fix}" if getattr(w, "fix", None) else "")
            for w in fairness_warnings(run, df)]


def runtimes_of(run, df: pd.DataFrame) -> list[str]:
    """The sweep's runtimes that have cells, in sweep order (then any others found in the store)."""
    have = list(dict.fromkeys(df["runtime"])) if len(df) else []
    return [rt for rt in run.sweep.runtimes if rt in have] + [rt for rt in have if rt not in run.sweep.runtimes]


def plot_blocks(df: pd.DataFrame, runtimes: list[str], slug: str, _: Callable[..., str]) -> list[Block]:
    figs, skipped = plot_group(df, runtimes, _)
    out: list[Block] = []
    for name, fig in figs.items():
        title = fig.axes[0].get_title() if not fig.get_suptitle() else fig.get_suptitle()
        out.append(Image(f"images/{slug}_{name}.png", title, png(fig)))
    if skipped:
        out.append(Para(_("plots_skipped", names=", ".join(skipped))))
    return out


def build(run, df: pd.DataFrame, _: Callable[..., str], plots: bool = True) -> list[Block]:
    """Every block of the report, in order (``_`` is the translator of ``i18n``)."""
    s = run.sweep
    blocks: list[Block] = [Heading(1, _("title", model=s.model, device=s.device)),
                           Para(_("run_line", id=run.id, created=run.created, status=run.status)),
                           Heading(2, _("h_method")), Bullets(method_lines(run, df, _))]
    warn = fairness_items(run, df, _)
    blocks += [Heading(2, _("h_fairness")), Bullets(warn) if warn else Para(_("fairness_none"))]
    blocks.append(Heading(2, _("h_results")))
    if not len(df):
        return blocks + [Para(_("no_cells"))]
    counts = df["status"].value_counts().to_dict()
    blocks.append(Para(_("cells_count", counts=", ".join(f"{n} {k}" for k, n in sorted(counts.items())))))
    runtimes = runtimes_of(run, df)
    titles = {key: _("h_group", precision=key[0], device=key[1], boundary=key[2]) for key, _g in groups(df)}
    for key, g in groups(df):
        blocks += [Heading(3, titles[key]), seed_rows(g, runtimes, _)]
    blocks.append(Para(_("table_note")))
    if plots:
        blocks += [Heading(2, _("h_plots")), Para(_("plot_note"))]
        for key, g in groups(df):
            blocks += [Heading(3, titles[key]), *plot_blocks(g, runtimes, group_slug(key), _)]
    blocks.append(Heading(2, _("h_conclusions")))
    for key, g in groups(df):
        blocks += [Heading(3, titles[key]), *conclusion_blocks(g, runtimes, _)]
    tele = telemetry_rows(df, _)
    if tele is not None:
        blocks += [Heading(2, _("h_telemetry")), tele]
    bad = df[~df["status"].isin(MEASURED)]
    if len(bad):
        head = [_("col_runtime"), _("col_precision"), _("col_size"), _("col_batch"), _("col_status"), _("col_reason")]
        rows = [[r["runtime"], r["precision"], str(r["size"]), str(r["batch"]), r["status"], str(r["reason"] or "")]
                for _i, r in bad.iterrows()]
        blocks += [Heading(2, _("h_not_measured")), Table(head, rows)]
    return blocks
