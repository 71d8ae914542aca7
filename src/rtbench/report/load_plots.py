"""The load report's plots: p99 against offered rate per runtime and policy (with the SLO), the latency CDF at each
series' best point, and where the latency went there (queueing vs compute). Each returns a Figure or None."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rtbench.report.plots import new_figure

SERIES = ["runtime", "precision", "max_batch", "max_delay_ms"]


def series_label(key: tuple) -> str:
    rt, precision, b, d = key
    return f"{rt} {precision} b{int(b)}/{d:g}ms"


def _colours(df: pd.DataFrame) -> dict:
    keys = list(dict.fromkeys(map(tuple, df[SERIES].itertuples(index=False))))
    return {k: f"C{i % 10}" for i, k in enumerate(keys)}


def p99_vs_qps(df: pd.DataFrame, slo_ms: float | None) -> Figure | None:
    """p99 (95% CI) against offered QPS, one line per series; hollow markers for points that are not valid."""
    m = df[(df["status"] == "ok") & df["offered_qps"].notna()]
    if m.empty:
        return None
    fig, (ax,) = new_figure(width=8.0, height=4.5)
    colours = _colours(m)
    for key, g in m.groupby(SERIES, sort=False):
        g = g.sort_values("offered_qps")
        y = g["p99_ms"].to_numpy(float)
        err = np.vstack([np.clip(y - g["p99_low_ms"].to_numpy(float), 0, None),
                         np.clip(g["p99_high_ms"].to_numpy(float) - y, 0, None)])
        c = colours[key]
        ax.errorbar(g["offered_qps"], y, yerr=np.nan_to_num(err), color=c, marker="o", capsize=3,
                    label=series_label(key))
        bad = g[~g["valid"].astype(bool)]
        ax.plot(bad["offered_qps"], bad["p99_ms"], linestyle="none", marker="o", markersize=9, mfc="white", mec=c)
    if slo_ms is not None:
        ax.axhline(slo_ms, color="red", linestyle="--", linewidth=1, label=f"SLO p99 ≤ {slo_ms:g} ms")
    ax.set_yscale("log")
    ax.set(title="p99 latency against offered load (hollow: not valid)", xlabel="offered QPS", ylabel="p99 latency, ms")
    ax.legend(fontsize=8)
    return fig


def _best(df: pd.DataFrame) -> pd.DataFrame:
    """Each series' best point, or where none passed its highest valid point."""
    out = []
    for _k, g in df[df["status"] == "ok"].groupby(SERIES, sort=False):
        pick = g[g["best"]] if g["best"].any() else g[g["valid"].astype(bool)]
        if len(pick):
            out.append(pick.sort_values("offered_qps").iloc[-1])
    return pd.DataFrame(out)


def cdf_at_best(df: pd.DataFrame, slo_ms: float | None) -> Figure | None:
    """The latency CDF of each series at its best point (counted requests, after the warm-up)."""
    b = _best(df)
    if b.empty:
        return None
    fig, (ax,) = new_figure(width=8.0, height=4.5)
    colours = _colours(df)
    for _i, r in b.iterrows():
        lat = np.sort(np.asarray(r["latency_ms"])[np.asarray(r["arrival_s"]) >= r["warmup_s"]])
        key = tuple(r[k] for k in SERIES)
        ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), color=colours[key],
                label=f"{series_label(key)} at {r['offered_qps']:,.0f} QPS")
    if slo_ms is not None:
        ax.axvline(slo_ms, color="red", linestyle="--", linewidth=1, label="SLO")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set(title="Latency CDF at each series' best point", xlabel="latency, ms", ylabel="share of requests")
    ax.legend(fontsize=8)
    return fig


def split_at_best(df: pd.DataFrame) -> Figure | None:
    """Mean latency at each series' best point, split into queueing (waiting for a batch and the runtime) and
    compute (the batch's call until its outputs were ready)."""
    b = _best(df)
    if b.empty:
        return None
    fig, (ax,) = new_figure(width=8.0, height=0.6 + 0.5 * len(b))
    labels = [f"{series_label(tuple(r[k] for k in SERIES))} @ {r['offered_qps']:,.0f}" for _i, r in b.iterrows()]
    y = np.arange(len(b))
    ax.barh(y, b["mean_queue_ms"], color="C1", label="queueing")
    ax.barh(y, b["mean_compute_ms"], left=b["mean_queue_ms"], color="C0", label="compute")
    ax.set_yticks(y, labels, fontsize=8)
    fig.subplots_adjust(left=0.42)
    ax.set(title="Where the mean latency went at the best point", xlabel="ms")
    ax.legend(fontsize=8)
    return fig
