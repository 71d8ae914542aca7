"""The conclusions section: the findings of ``conclusions`` written out in the report's language."""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd

from rtbench.report import conclusions as c
from rtbench.report.blocks import Block, Bullets, Heading, Para, Table
from rtbench.results import BASELINE


def verdict_text(v: c.Verdict | None, _: Callable[..., str]) -> str:
    """One table cell: the winner with its speedup vs torch and CI, or "no significant difference"."""
    if v is None:
        return _("c_nodata")
    flag = _("c_mismatch") if v.mismatch else ""
    if v.runner_up is None:
        return _("c_alone", rt=v.winner) + flag
    if not v.significant:
        return _("c_nsd", rts=", ".join((v.winner, *v.tied))) + flag
    if v.winner == BASELINE or math.isnan(v.speedup):
        x = _("c_baseline_x", margin=v.margin, other=v.runner_up)
    else:
        x = _("c_x", s=v.speedup, lo=v.speedup_low, hi=v.speedup_high)
    return _("c_win", rt=v.winner, x=x) + flag


def regime_label(regime: str, batch: int, _: Callable[..., str]) -> str:
    return _("c_small" if regime == "small" else "c_large", batch=batch)


def best_runtime_blocks(df: pd.DataFrame, _: Callable[..., str]) -> list[Block]:
    """"Which runtime is faster?": a size x regime table of verdicts and one summary line per regime."""
    reg = c.regimes(df)
    if not reg:
        return []
    verdicts = c.regime_verdicts(df)
    sizes = sorted({v.size for vs in verdicts.values() for v in vs})
    rows = []
    for size in sizes:
        row = [f"{size}x{size}"]
        for regime in reg:
            v = next((v for v in verdicts[regime] if v.size == size), None)
            row.append(verdict_text(v, _))
        rows.append(row)
    lines = []
    for regime, batch in reg.items():
        label, vs = regime_label(regime, batch, _).capitalize(), verdicts[regime]
        lead = c.regime_leader(vs)
        if lead is None:
            lines.append(_("c_regime_none", regime=label))
            continue
        rt, k = lead
        ups = [v.speedup for v in vs if v.winner == rt and v.significant and not math.isnan(v.speedup)]
        if rt == BASELINE or not ups:
            lines.append(_("c_regime_sum_base", regime=label, rt=rt, k=k, n=len(vs)))
        else:
            lines.append(_("c_regime_sum", regime=label, rt=rt, k=k, n=len(vs), best=max(ups)))
    small = reg["small"]
    return [Heading(4, _("c_best_h")),
            Para(_("c_best_table", small=small, large=reg.get("large", small))),
            Table([_("col_size")] + [regime_label(r, b, _) for r, b in reg.items()], rows),
            Bullets(lines)]


def saturation_text(s: c.Saturation | None, _: Callable[..., str]) -> str:
    if s is None:
        return _("c_nodata")
    if not s.saturated:
        return _("c_sat_one", batch=s.batch) if math.isnan(s.next_gain) else _("c_sat_grows", batch=s.batch,
                                                                                  gain=s.next_gain)
    return _("c_sat_overlap" if s.overlap else "c_sat_at", batch=s.batch, gain=s.next_gain)


def batch_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """"Effect of batch size": per size and runtime, the batch where throughput stops growing."""
    m = c.measured(df)
    if m.empty or m["batch"].nunique() < 2:
        return []
    rts = [rt for rt in runtimes if (m["runtime"] == rt).any()]
    rows = [[f"{size}x{size}"] + [saturation_text(c.saturation(df, rt, size), _) for rt in rts]
            for size in sorted(m["size"].unique())]
    return [Heading(4, _("c_batch_h")), Para(_("c_batch_intro", gain=c.SATURATION_GAIN)),
            Table([_("col_size")] + rts, rows)]


def size_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """"Effect of input size": FPS and time per image from the smallest to the largest size."""
    effects = [e for rt in runtimes if (e := c.size_effect(df, rt)) is not None]
    if not effects:
        return [Heading(4, _("c_size_h")), Para(_("c_size_one"))] if len(c.measured(df)) else []
    lines = []
    for e in effects:
        rel = e.time_ratio / e.pixel_ratio
        how = _("c_size_sub") if rel < 0.9 else _("c_size_super") if rel > 1.1 else _("c_size_lin")
        lines.append(_("c_size_line", rt=e.runtime, batch=e.batch, lo=e.size_lo, hi=e.size_hi, px=e.pixel_ratio,
                       fps_lo=e.fps_lo, fps_hi=e.fps_hi, ratio=e.fps_lo / e.fps_hi, t=e.time_ratio, how=how))
    return [Heading(4, _("c_size_h")), Bullets(lines)]


def recommendation_blocks(df: pd.DataFrame, _: Callable[..., str]) -> list[Block]:
    """Latency pick (significant winner at the smallest batch), throughput pick (runtime and batch), size advice."""
    reg = c.regimes(df)
    if not reg:
        return []
    verdicts = c.regime_verdicts(df)
    lines = []
    lead = c.regime_leader(verdicts["small"])
    if lead:
        lines.append(_("c_rec_latency", batch=reg["small"], rt=lead[0], k=lead[1], n=len(verdicts["small"])))
    else:
        lines.append(_("c_rec_latency_none", batch=reg["small"]))
    large = "large" if "large" in reg else "small"
    big = c.regime_leader(verdicts[large])
    if big:
        rt, why = big[0], _("c_rec_lead", k=big[1], n=len(verdicts[large]), batch=reg[large])
    else:
        rt, why = _fallback_runtime(df), _("c_rec_nsd", batch=reg[large])
    s = c.throughput_pick(df, rt) if rt and c.measured(df)["batch"].nunique() > 1 else None
    if s is not None:
        key = "c_rec_throughput" if s.saturated else "c_rec_throughput_grow"
        lines.append(_(key, why=why, rt=rt, batch=s.batch, size=s.size, fps=s.fps, fps_lo=s.fps_low,
                       fps_hi=s.fps_high, gain=c.SATURATION_GAIN))
    if c.measured(df)["size"].nunique() > 1:
        lines.append(_("c_rec_size"))
    if (df["status"] == "mismatch").any():
        lines.append(_("c_rec_mismatch"))
    return [Heading(4, _("c_rec_h")), Bullets(lines)]


def _fallback_runtime(df: pd.DataFrame) -> str | None:
    """Without a significant winner: the baseline (torch) when it was measured, else the first runtime measured."""
    m = c.measured(df)
    if m.empty:
        return None
    return BASELINE if (m["runtime"] == BASELINE).any() else str(m.iloc[0]["runtime"])


def conclusion_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """Every conclusion for the cells of one precision, device and boundary."""
    if c.measured(df).empty:
        return []
    return (best_runtime_blocks(df, _) + batch_blocks(df, runtimes, _) + size_blocks(df, runtimes, _)
            + recommendation_blocks(df, _))
