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
    note = _("c_rivals", rts=", ".join(v.mismatch_rivals)) if v.mismatch_rivals else ""
    rivals = _("c_among") + note if note else ""
    if v.winner is None:
        return _("c_no_match", rts=", ".join(v.mismatched))
    if v.runner_up is None:
        return _("c_alone_match" if v.mismatched else "c_alone", rt=v.winner) + note
    if not v.significant:
        beat = [rt for rt in v.top if rt in v.faster_than_baseline]
        return _("c_nsd", rts=", ".join(v.top)) + (_("c_nsd_base", rts=", ".join(beat)) if beat else "") + rivals
    if v.winner == BASELINE:
        x = _("c_baseline_x", margin=v.margin, other=v.runner_up)
    elif math.isnan(v.speedup):
        x = _("c_margin_x", margin=v.margin, other=v.runner_up)
    elif math.isnan(v.speedup_low) or math.isnan(v.speedup_high):
        x = _("c_x_point", s=v.speedup)
    else:
        x = _("c_x", s=v.speedup, lo=v.speedup_low, hi=v.speedup_high)
    return _("c_win", rt=v.winner, x=x) + rivals


def regime_label(regime: str, batch: int, _: Callable[..., str]) -> str:
    return _("c_small" if regime == "small" else "c_large", batch=batch)


def _counts(counts: dict[str, int], n: int, _: Callable[..., str]) -> str:
    """'onnxruntime at 2 of 4 sizes, openvino at 1 of 4 sizes'."""
    return ", ".join(_("c_count", rt=rt, k=k, n=n) for rt, k in counts.items())


def regime_facts(s: c.RegimeSummary, _: Callable[..., str], vs_baseline: bool = True) -> str:
    """The sentences that qualify a regime's lead or its absence: other winners, sizes the leader lacks, faster
    mismatching runtimes, and (without a single leader) how each runtime at the top compares with torch."""
    out = []
    if len(s.leaders) == 1:
        others = {rt: k for rt, k in s.wins.items() if rt not in s.leaders}
        if others:
            out.append(_("c_also", items=_counts(others, s.sizes, _)))
        for rt, sizes in s.missing.items():
            out.append(_("c_missing", rt=rt, sizes=", ".join(f"{x}×{x}" for x in sizes)))
    elif s.baseline_sizes and vs_baseline and (top := [rt for rt in s.top if rt != BASELINE]):
        beat = {rt: s.faster_than_baseline[rt] for rt in top if rt in s.faster_than_baseline}
        out.append(_("c_vs_base", items=_counts(beat, s.sizes, _)) if beat else _("c_vs_base_none"))
    if s.mismatch_rivals:
        out.append(_("c_rivals_regime", items=_counts(s.mismatch_rivals, s.sizes, _)))
    if s.no_ci:
        out.append(_("c_no_ci", items=_counts(s.no_ci, s.sizes, _)))
    return "".join(" " + x for x in out)


def regime_line(regime: str, s: c.RegimeSummary, _: Callable[..., str]) -> str:
    """One summary line per regime: its leader, a tie of leaders, or the runtimes at the top without a leader."""
    label = regime_label(regime, s.batch, _).capitalize()
    if len(s.leaders) == 1:
        rt = s.leaders[0]
        key = "c_regime_sum" if rt in s.best_speedup and rt != BASELINE else "c_regime_sum_base"
        head = _(key, regime=label, rt=rt, k=s.wins[rt], n=s.sizes, best=s.best_speedup.get(rt, math.nan))
    elif s.leaders:
        head = _("c_regime_tie", regime=label, rts=", ".join(s.leaders), k=s.wins[s.leaders[0]], n=s.sizes)
    else:
        head = _("c_regime_none", regime=label, items=_counts(s.top, s.sizes, _))
    return head + regime_facts(s, _)


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
    lines = [regime_line(regime, c.regime_summary(verdicts[regime], batch), _) for regime, batch in reg.items()]
    small = reg["small"]
    return [Heading(4, _("c_best_h")),
            Para(_("c_best_table", small=small, large=reg.get("large", small))),
            Table([_("col_size")] + [regime_label(r, b, _) for r, b in reg.items()], rows),
            Bullets(lines)]


def fps_text(fps: float, lo: float, hi: float, _: Callable[..., str]) -> str:
    """'142.3 FPS, 141.5–143.1', or the FPS alone when the cell has no CI."""
    return _("c_fps_noci", fps=fps) if math.isnan(lo) or math.isnan(hi) else _("c_fps", fps=fps, lo=lo, hi=hi)


def pick_text(p: c.BatchPick | None, _: Callable[..., str]) -> str:
    """One cell of the batch table: the batch to use for throughput and why."""
    if p is None:
        return _("c_nodata")
    if len(p.batches) == 1:
        text = _("c_sat_one_match" if p.left_out else "c_sat_one", batch=p.batch)
    elif p.growing:
        text = _("c_pick_grows", batch=p.batch, prev=p.batches[-2], gain=p.last_gain)
    elif p.batch == p.best_batch:
        text = _("c_pick_best", batch=p.batch)
    else:
        text = _("c_pick_near", batch=p.batch, best=p.best_batch, gain=p.gain, tol=c.BATCH_TOLERANCE)
    return text + (_("c_left_out", batches=", ".join(map(str, p.left_out))) if p.left_out else "")


def batch_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """"Effect of batch size": per size and runtime, the batch to use for throughput."""
    m = c.measured(df)
    if m.empty or m["batch"].nunique() < 2:
        return []
    rts = [rt for rt in runtimes if (m["runtime"] == rt).any()]
    rows = []
    for size in sorted(m["size"].unique()):
        row = [f"{size}x{size}"]
        for rt in rts:
            p = c.batch_pick(df, rt, int(size))
            mism = ((m["runtime"] == rt) & (m["size"] == size) & (m["status"] != c.MATCHING)).any()
            row.append(_("c_mismatch_only") if p is None and mism else pick_text(p, _))
        rows.append(row)
    return [Heading(4, _("c_batch_h")), Para(_("c_batch_intro", gain=c.BATCH_TOLERANCE)),
            Table([_("col_size")] + rts, rows)]


def size_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """"Effect of input size": FPS and time per image from the smallest to the largest size."""
    effects = [e for rt in runtimes if (e := c.size_effect(df, rt)) is not None]
    if not effects:
        return [Heading(4, _("c_size_h")), Para(_("c_size_one"))] if len(c.measured(df)) else []
    lines = []
    for e in effects:
        how = _({"sub": "c_size_sub", "lin": "c_size_lin", "super": "c_size_super"}.get(e.scaling, "c_size_unclear"))
        lines.append(_("c_size_line", rt=e.runtime, batch=e.batch, lo=e.size_lo, hi=e.size_hi, px=e.pixel_ratio,
                       fps_lo=e.fps_lo, fps_hi=e.fps_hi, ratio=e.fps_lo / e.fps_hi, t=e.time_ratio, how=how))
    return [Heading(4, _("c_size_h")), Bullets(lines)]


def latency_line(s: c.RegimeSummary, _: Callable[..., str]) -> str:
    """The latency recommendation: the leader, a tie with no pick, the baseline, or the runtimes at the top."""
    if len(s.leaders) == 1:
        head = _("c_rec_latency", batch=s.batch, rt=s.leaders[0], k=s.wins[s.leaders[0]], n=s.sizes)
    elif s.leaders:
        head = _("c_rec_latency_tie", batch=s.batch, rts=", ".join(s.leaders), k=s.wins[s.leaders[0]], n=s.sizes)
    elif s.baseline_sizes == s.sizes and not s.faster_than_baseline and not s.no_ci:
        return _("c_rec_latency_none", batch=s.batch) + regime_facts(s, _, vs_baseline=False)
    else:
        head = _("c_rec_latency_top", batch=s.batch, items=_counts(s.top, s.sizes, _))
    return head + regime_facts(s, _)


def throughput_line(t: c.ThroughputVerdict, _: Callable[..., str]) -> str:
    """The throughput recommendation: one runtime at its batch, or the runtimes tied for the most FPS."""
    rts = ", ".join(_("c_rt_batch", rt=rt, batch=b) for rt, b in t.mismatch_rivals)
    rivals = _("c_tp_rivals", rts=rts) if rts else ""
    if len(t.picks) > 1 and not t.significant:
        items = "; ".join(_("c_tp_item", rt=p.runtime, batch=p.batch, fps=fps_text(p.fps, p.fps_low, p.fps_high, _))
                          for p in t.picks)
        return _("c_rec_tp_tie", size=t.size, items=items) + rivals
    p = t.picks[0]
    if p.growing:
        why = _("c_tp_grows")
    elif p.batch == p.best_batch:
        why = _("c_tp_best")
    else:
        why = _("c_tp_near", best=p.best_batch, gain=p.gain, tol=c.BATCH_TOLERANCE,
                fps=fps_text(p.best_fps, p.best_fps_low, p.best_fps_high, _))
    return _("c_rec_tp" if t.significant else "c_rec_tp_alone", size=t.size, rt=p.runtime, batch=p.batch,
             fps=fps_text(p.fps, p.fps_low, p.fps_high, _), why=why) + rivals


def recommendation_blocks(df: pd.DataFrame, _: Callable[..., str]) -> list[Block]:
    """Latency pick (significant winner at the smallest batch), throughput pick (runtime and batch), size advice."""
    reg = c.regimes(df)
    if not reg:
        return []
    verdicts = c.regime_verdicts(df)
    lines = [latency_line(c.regime_summary(verdicts["small"], reg["small"]), _)]
    m = c.measured(df)
    t = c.throughput_verdict(df) if m["batch"].nunique() > 1 else None
    if t is not None:
        lines.append(throughput_line(t, _))
    if m["size"].nunique() > 1:
        lines.append(_("c_rec_size"))
    if (df["status"] == "mismatch").any():
        lines.append(_("c_rec_mismatch"))
    if "launch_bound" in m and (bound := m[m["launch_bound"] == True]).shape[0]:  # noqa: E712 - NaN is not bound
        cells = ", ".join(f"{r.runtime} {r.size}px b{r.batch}" for r in bound.itertuples())
        lines.append(_("c_rec_launch_bound", n=len(bound), cells=cells))
    return [Heading(4, _("c_rec_h")), Bullets(lines)]


def conclusion_blocks(df: pd.DataFrame, runtimes: list[str], _: Callable[..., str]) -> list[Block]:
    """Every conclusion for the cells of one precision, device and boundary."""
    if c.measured(df).empty:
        return []
    return (best_runtime_blocks(df, _) + batch_blocks(df, runtimes, _) + size_blocks(df, runtimes, _)
            + recommendation_blocks(df, _))
