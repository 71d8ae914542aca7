"""Conclusions from the data, as pure functions over the cells of one precision, device and boundary.

A difference is called a win only when the winner's 95% CI lies wholly below every other runtime's;
otherwise the verdict is "no significant difference". Throughput "stops growing" with batch when the
next batch gives less than ``SATURATION_GAIN`` more FPS or the FPS CIs overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from rtbench.results import BASELINE

from rtbench.status import MEASURED

SATURATION_GAIN = 0.05
MIN_SAMPLES_FOR_CI = 3  # below this a cell's "CI" is a point: it cannot support a significant difference


@dataclass(frozen=True)
class Verdict:
    """The fastest runtime of one (size, batch) and whether it is clear of the noise."""

    size: int
    batch: int
    winner: str
    significant: bool
    tied: tuple[str, ...]  # runtimes whose CI overlaps the winner's (empty when significant)
    runner_up: str | None
    margin: float  # runner-up ms / winner ms
    speedup: float  # winner vs torch (nan without a torch cell)
    speedup_low: float
    speedup_high: float
    mismatch: bool


@dataclass(frozen=True)
class Saturation:
    """Where one runtime's throughput stops growing with batch at one size."""

    runtime: str
    size: int
    batch: int  # the batch after which throughput stops growing (the largest one when it never stops)
    next_gain: float  # relative FPS gain of the next batch (of the last step when still growing)
    overlap: bool  # the next batch's FPS CI overlaps this one's
    saturated: bool
    fps: float
    fps_low: float
    fps_high: float


@dataclass(frozen=True)
class SizeEffect:
    """How one runtime's throughput changes from the smallest to the largest input size."""

    runtime: str
    batch: int
    size_lo: int
    size_hi: int
    fps_lo: float
    fps_hi: float
    pixel_ratio: float
    time_ratio: float  # ms per image at the largest size over the smallest


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """The cells with a timing (ok or mismatch)."""
    return df[df["status"].isin(MEASURED)] if len(df) else df


def has_ci(r) -> bool:
    """Whether a cell has enough samples for its CI to mean anything (rows without ``n`` are trusted)."""
    n = r.get("n", MIN_SAMPLES_FOR_CI)
    return not (n is None or (isinstance(n, float) and math.isnan(n))) and n >= MIN_SAMPLES_FOR_CI


def cell_verdict(cells: pd.DataFrame) -> Verdict | None:
    """Verdict for the cells of one (size, batch), or None when nothing was measured.

    Another runtime ties with the fastest when their CIs overlap or either has too few samples for a CI.
    """
    m = measured(cells).sort_values("ms")
    if m.empty:
        return None
    best = m.iloc[0]
    others = m.iloc[1:]
    tied = tuple(r["runtime"] for _, r in others.iterrows()
                 if r["ci_low_ms"] <= best["ci_high_ms"] or not (has_ci(r) and has_ci(best)))
    runner = others.iloc[0] if len(others) else None
    return Verdict(
        size=int(best["size"]), batch=int(best["batch"]), winner=best["runtime"],
        significant=len(others) > 0 and not tied, tied=tied,
        runner_up=None if runner is None else runner["runtime"],
        margin=math.nan if runner is None else float(runner["ms"] / best["ms"]),
        speedup=float(best.get("speedup", math.nan)), speedup_low=float(best.get("speedup_low", math.nan)),
        speedup_high=float(best.get("speedup_high", math.nan)), mismatch=best["status"] == "mismatch")


def regimes(df: pd.DataFrame) -> dict[str, int]:
    """Small batch = the smallest batch measured, large batch = the largest (one entry when they coincide)."""
    b = sorted(measured(df)["batch"].unique()) if len(df) else []
    if not b:
        return {}
    return {"small": int(b[0])} if len(b) == 1 else {"small": int(b[0]), "large": int(b[-1])}


def regime_verdicts(df: pd.DataFrame) -> dict[str, list[Verdict]]:
    """Per regime, the verdict at every size (ascending)."""
    out: dict[str, list[Verdict]] = {}
    for regime, batch in regimes(df).items():
        g = df[df["batch"] == batch]
        out[regime] = [v for _, cells in g.groupby("size", sort=True) if (v := cell_verdict(cells)) is not None]
    return out


def regime_leader(verdicts: list[Verdict]) -> tuple[str, int] | None:
    """The runtime with the most significant wins in a regime and its count; None when nothing is significant."""
    wins: dict[str, int] = {}
    for v in verdicts:
        if v.significant:
            wins[v.winner] = wins.get(v.winner, 0) + 1
    if not wins:
        return None
    rt = max(wins, key=lambda k: (wins[k], k == BASELINE))
    return rt, wins[rt]


def saturation(df: pd.DataFrame, runtime: str, size: int, min_gain: float = SATURATION_GAIN) -> Saturation | None:
    """Where throughput of ``runtime`` at ``size`` stops growing with batch; None with no measured batch."""
    g = measured(df)
    g = g[(g["runtime"] == runtime) & (g["size"] == size)].sort_values("batch")
    if g.empty:
        return None
    rows = [r for _, r in g.iterrows()]
    for cur, nxt in zip(rows, rows[1:]):
        gain = nxt["fps"] / cur["fps"] - 1
        overlap = nxt["fps_low"] <= cur["fps_high"] and nxt["fps_high"] >= cur["fps_low"]
        if gain < min_gain or overlap:
            return _sat(runtime, size, cur, gain, overlap, True)
    last_gain = rows[-1]["fps"] / rows[-2]["fps"] - 1 if len(rows) > 1 else math.nan
    return _sat(runtime, size, rows[-1], last_gain, False, False)


def _sat(runtime, size, r, gain, overlap, saturated) -> Saturation:
    return Saturation(runtime, int(size), int(r["batch"]), float(gain), bool(overlap), saturated,
                      float(r["fps"]), float(r["fps_low"]), float(r["fps_high"]))


def size_effect(df: pd.DataFrame, runtime: str) -> SizeEffect | None:
    """Throughput at the smallest vs the largest size, at the smallest batch; None with fewer than two sizes."""
    g = measured(df)
    g = g[g["runtime"] == runtime]
    if g.empty:
        return None
    batch = int(g["batch"].min())
    g = g[g["batch"] == batch].sort_values("size")
    if g["size"].nunique() < 2:
        return None
    lo, hi = g.iloc[0], g.iloc[-1]
    return SizeEffect(runtime, batch, int(lo["size"]), int(hi["size"]), float(lo["fps"]), float(hi["fps"]),
                      (hi["size"] / lo["size"]) ** 2, float(hi["ms_per_image"] / lo["ms_per_image"]))


def throughput_pick(df: pd.DataFrame, runtime: str) -> Saturation | None:
    """The batch to use for throughput with ``runtime`` at the smallest size: where its throughput stops growing."""
    g = measured(df)
    g = g[g["runtime"] == runtime]
    return saturation(df, runtime, int(g["size"].min())) if len(g) else None
