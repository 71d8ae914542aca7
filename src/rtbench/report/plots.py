"""The report's plots for the cells of one precision, device and boundary; each function returns a Figure.

The seed's six (FPS vs size, FPS vs batch, time per image, speedup by size and by batch, load %), with
95% CI error bars, plus a latency distribution, a speedup heatmap and throughput vs latency. A function
returns None when its plot would be empty or has a single x value. Figures are built without pyplot
(no global state) and rendered by the Agg canvas.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from rtbench.report.conclusions import measured
from rtbench.results import BASELINE

DPI = 100


def new_figure(ncols: int = 1, width: float = 7.0, height: float = 4.0, suptitle: bool = False) -> tuple[Figure, list]:
    """A figure with fixed margins: a layout engine would double the report's rendering time."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    fig.subplots_adjust(left=0.6 / width + 0.04, right=0.97, bottom=0.14, top=0.82 if suptitle else 0.9, wspace=0.28)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _present(df: pd.DataFrame, runtimes: list[str]) -> list[str]:
    return [rt for rt in runtimes if (df["runtime"] == rt).any()]


def palette(runtimes: list[str]) -> dict[str, str]:
    """One colour per runtime, the same in every plot of the report."""
    return {rt: f"C{i % 10}" for i, rt in enumerate(runtimes)}


def _series(ax, df, runtimes, x: str, y: str, lo: str, hi: str, skip: str | None = None) -> int:
    """One error-bar line per runtime (sorted by x), except ``skip``; returns how many lines were drawn."""
    drawn = 0
    colours = palette(runtimes)
    for rt in runtimes:
        if rt == skip:
            continue
        g = df[df["runtime"] == rt].dropna(subset=[y]).sort_values(x)
        if g.empty:
            continue
        yv, lov, hiv = g[y].to_numpy(float), g[lo].to_numpy(float), g[hi].to_numpy(float)
        err = np.vstack([np.clip(yv - lov, 0, None), np.clip(hiv - yv, 0, None)])
        ax.errorbar(g[x].to_numpy(), yv, yerr=np.nan_to_num(err), label=rt, marker="o", capsize=3, color=colours[rt])
        drawn += 1
    return drawn


def _xticks(ax, values) -> None:
    ax.set_xticks(sorted(set(int(v) for v in values)))


def _line_plot(df, runtimes, fix: str, x: str, y: tuple[str, str, str], title: str, xlabel: str, ylabel: str,
               baseline_line: bool = False) -> Figure | None:
    """Shared shape of the seed's line plots: ``y`` against ``x`` with the other axis fixed at its smallest value."""
    m = measured(df)
    if m.empty or m[x].nunique() < 2:
        return None
    m = m[m[fix] == m[fix].min()]
    fig, (ax,) = new_figure()
    if not _series(ax, m, runtimes, x, *y, skip=BASELINE if baseline_line else None):
        return None
    if baseline_line:
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    _xticks(ax, m[x])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return fig


def fps_vs_size(df, runtimes, _) -> Figure | None:
    m = measured(df)
    return _line_plot(df, runtimes, "batch", "size", ("fps", "fps_low", "fps_high"),
                      _("p_fps_vs_size", batch=m["batch"].min() if len(m) else 1), _("ax_size"), _("ax_fps"))


def fps_vs_batch(df, runtimes, _) -> Figure | None:
    m = measured(df)
    return _line_plot(df, runtimes, "size", "batch", ("fps", "fps_low", "fps_high"),
                      _("p_fps_vs_batch", size=m["size"].min() if len(m) else 0), _("ax_batch"), _("ax_fps"))


def time_per_image(df, runtimes, _) -> Figure | None:
    m = measured(df).copy()
    if len(m):
        m["img_low"], m["img_high"] = m["ci_low_ms"] / m["batch"], m["ci_high_ms"] / m["batch"]
    return _line_plot(m, runtimes, "size", "batch", ("ms_per_image", "img_low", "img_high"),
                      _("p_time_per_image", size=m["size"].min() if len(m) else 0), _("ax_batch"), _("ax_ms_img"))


def _speedups(df):
    """The measured cells that have a speedup vs torch."""
    return measured(df).dropna(subset=["speedup"]) if "speedup" in df else df[:0]


def speedup_vs_size(df, runtimes, _) -> Figure | None:
    m = _speedups(df)
    return _line_plot(m, runtimes, "batch", "size", ("speedup", "speedup_low", "speedup_high"),
                      _("p_speedup_vs_size", batch=m["batch"].min() if len(m) else 1), _("ax_size"),
                      _("ax_speedup"), baseline_line=True)


def speedup_vs_batch(df, runtimes, _) -> Figure | None:
    m = _speedups(df)
    return _line_plot(m, runtimes, "size", "batch", ("speedup", "speedup_low", "speedup_high"),
                      _("p_speedup_vs_batch", size=m["size"].min() if len(m) else 0), _("ax_batch"),
                      _("ax_speedup"), baseline_line=True)


def load_column(df) -> str | None:
    """The load % column to plot: against the datasheet peak when known, else the measured one."""
    return next((c for c in ("load_datasheet_pct", "load_measured_pct") if c in df and df[c].notna().any()), None)


def utilisation(df, runtimes, _) -> Figure | None:
    """Load % by size (smallest batch) and by batch (smallest size), with the CI carried over from the time."""
    m = measured(df)
    col = load_column(m) if len(m) else None
    if col is None:
        return None
    m = m.assign(load_lo=m[col] * m["ms"] / m["ci_high_ms"],
                 load_hi=m[col] * m["ms"] / m["ci_low_ms"])
    fig, axes = new_figure(2, width=10, suptitle=True)
    fig.suptitle(_("p_utilisation", which=_("peak_datasheet" if col == "load_datasheet_pct" else "peak_measured")))
    panels = [(axes[0], "batch", "size", _("ax_by_size", batch=m["batch"].min()), _("ax_size")),
              (axes[1], "size", "batch", _("ax_by_batch", size=m["size"].min()), _("ax_batch"))]
    for ax, fix, x, title, xlabel in panels:
        g = m[m[fix] == m[fix].min()]
        _series(ax, g, runtimes, x, col, "load_lo", "load_hi")
        _xticks(ax, g[x])
        ax.set(title=title, xlabel=xlabel, ylabel=_("ax_load"))
        ax.set_ylim(bottom=0)
    axes[0].legend()
    return fig


def latency_distribution(df, runtimes, _) -> Figure | None:
    """Box plot of every timed call per runtime at the smallest size and batch."""
    m = measured(df)
    if m.empty:
        return None
    size, batch = m["size"].min(), m[m["size"] == m["size"].min()]["batch"].min()
    cell = m[(m["size"] == size) & (m["batch"] == batch)]
    data, labels = [], []
    for rt in runtimes:
        rows = cell[cell["runtime"] == rt]
        if len(rows) and rows.iloc[0]["samples_ms"] is not None and len(rows.iloc[0]["samples_ms"]):
            data.append(np.asarray(rows.iloc[0]["samples_ms"], float))
            labels.append(rt)
    if not data:
        return None
    fig, (ax,) = new_figure()
    ax.boxplot(data, tick_labels=labels, whis=(1, 99), flierprops={"markersize": 2})
    ax.set(title=_("p_latency_dist", size=size, batch=batch), ylabel=_("ax_ms"))
    return fig


def speedup_heatmap(df, runtimes, _) -> Figure | None:
    """Speedup vs torch over size x batch, one panel per runtime; missing cells are left blank."""
    m = _speedups(df)
    rts = _present(m, [rt for rt in runtimes if rt != BASELINE])
    if not rts:
        return None
    sizes, batches = sorted(df["size"].unique()), sorted(df["batch"].unique())
    vals = m["speedup"].to_numpy(float)
    norm = TwoSlopeNorm(1.0, vmin=min(vals.min(), 0.95), vmax=max(vals.max(), 1.05))
    fig, axes = new_figure(len(rts), width=max(5.0, 4.2 * len(rts)), height=3.8, suptitle=True)
    fig.suptitle(_("p_speedup_heatmap"))
    for ax, rt in zip(axes, rts):
        grid = np.full((len(sizes), len(batches)), np.nan)
        g = m[m["runtime"] == rt]
        for _i, r in g.iterrows():
            i, j = sizes.index(r["size"]), batches.index(r["batch"])
            grid[i, j] = r["speedup"]
            clear = r["speedup_low"] > 1 or r["speedup_high"] < 1
            shade = norm(r["speedup"])
            ax.text(j, i, f"{r['speedup']:.2f}" + ("" if clear else "~"), ha="center", va="center", fontsize=9,
                    color="white" if shade > 0.8 or shade < 0.2 else "black")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", norm=norm, aspect="auto")
        ax.grid(False)
        ax.set_xticks(range(len(batches)), [str(b) for b in batches])
        ax.set_yticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set(title=rt, xlabel=_("ax_batch"), ylabel=_("ax_size"))
    fig.colorbar(im, ax=axes, label=_("ax_speedup"), shrink=0.9)
    return fig


def throughput_latency(df, runtimes, _) -> Figure | None:
    """FPS against latency per call at the smallest size; each point is a batch size."""
    m = measured(df)
    if m.empty or m["batch"].nunique() < 2:
        return None
    size = m["size"].min()
    m = m[m["size"] == size]
    fig, (ax,) = new_figure()
    colours = palette(runtimes)
    for rt in runtimes:
        g = m[m["runtime"] == rt].sort_values("batch")
        if g.empty:
            continue
        x, y = g["ms"].to_numpy(float), g["fps"].to_numpy(float)
        xerr = np.vstack([x - g["ci_low_ms"].to_numpy(float), g["ci_high_ms"].to_numpy(float) - x])
        yerr = np.vstack([y - g["fps_low"].to_numpy(float), g["fps_high"].to_numpy(float) - y])
        ax.errorbar(x, y, xerr=np.clip(xerr, 0, None), yerr=np.clip(yerr, 0, None), label=rt, marker="o", capsize=3,
                    color=colours[rt])
        for xi, yi, b in zip(x, y, g["batch"]):
            ax.annotate(str(b), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(title=_("p_throughput_latency", size=size), xlabel=_("ax_ms"), ylabel=_("ax_fps"))
    ax.legend()
    return fig


PLOTS: list[tuple[str, Callable]] = [
    ("fps_vs_size", fps_vs_size), ("fps_vs_batch", fps_vs_batch), ("time_per_image", time_per_image),
    ("speedup_vs_size", speedup_vs_size), ("speedup_vs_batch", speedup_vs_batch), ("utilisation", utilisation),
    ("latency_distribution", latency_distribution), ("speedup_heatmap", speedup_heatmap),
    ("throughput_latency", throughput_latency),
]


def plot_group(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> tuple[dict[str, Figure], list[str]]:
    """Every plot for the cells of one precision, device and boundary: ({name: Figure}, names not drawn)."""
    drawn, skipped = {}, []
    for name, fn in PLOTS:
        fig = fn(df, runtimes, _)
        if fig is None:
            skipped.append(name)
        else:
            drawn[name] = fig
    return drawn, skipped
