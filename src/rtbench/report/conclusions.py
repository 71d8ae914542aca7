"""Conclusions from the data, as pure functions over the cells of one precision, device and boundary.

The rules every conclusion follows:

- Only cells whose outputs match the reference (status ``ok``) win, lead or are recommended. A ``mismatch``
  cell (outputs beyond the parity tolerance) that is as fast or faster is named beside the winner, never
  instead of it.
- One cell is faster than another only when both have a CI (at least ``MIN_SAMPLES_FOR_CI`` samples and
  finite bounds) and the CIs are disjoint; otherwise they are "no significant difference".
- The runtimes tied at the top are each compared with the baseline (torch) on their own.
- A tie in the number of wins is a tie: it is never resolved into one pick.
- The batch for throughput is the smallest whose FPS is within ``BATCH_TOLERANCE`` of the best batch's and
  not significantly below it (FPS CIs overlap).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from rtbench.results import BASELINE

from rtbench.status import MEASURED

MATCHING = "ok"
BATCH_TOLERANCE = 0.05  # a batch within 5% of the best batch's FPS is as good for throughput
MIN_SAMPLES_FOR_CI = 3  # below this a cell's "CI" is a point: it cannot support a significant difference
SCALING_BAND = (0.9, 1.1)  # time per image over the pixel ratio inside this band: "in line with the pixel count"

nan = math.nan


@dataclass(frozen=True)
class Verdict:
    """The fastest runtime with matching outputs at one (size, batch), and whether it is clear of the noise."""

    size: int
    batch: int
    winner: str | None  # None when no runtime's outputs match
    significant: bool  # the winner's CI is clear of every other matching runtime's
    tied: tuple[str, ...]  # matching runtimes not significantly slower than the winner
    runner_up: str | None  # the next fastest matching runtime
    margin: float  # runner-up ms / winner ms
    speedup: float  # winner vs torch (nan without a torch cell)
    speedup_low: float
    speedup_high: float
    matching: tuple[str, ...]  # every runtime with matching outputs here, fastest first
    faster_than_baseline: tuple[str, ...]  # matching runtimes significantly faster than torch here
    baseline_measured: bool  # torch has a cell with matching outputs here
    mismatched: tuple[str, ...]  # runtimes measured here with outputs beyond the tolerance
    mismatch_rivals: tuple[str, ...]  # of those, the ones not significantly slower than the winner
    no_ci: tuple[str, ...]  # runtimes measured here without a usable CI: compared with nothing

    @property
    def top(self) -> tuple[str, ...]:
        """The winner and the runtimes tied with it."""
        return () if self.winner is None else (self.winner, *self.tied)


@dataclass(frozen=True)
class RegimeSummary:
    """The verdicts of one batch across sizes, counted per runtime."""

    batch: int
    sizes: int  # sizes with a verdict
    wins: dict[str, int]  # significant wins per runtime
    leaders: tuple[str, ...]  # the runtimes with the most wins: one is a leader, several a tie, none no wins
    top: dict[str, int]  # sizes where a runtime is fastest or within the noise of the fastest
    faster_than_baseline: dict[str, int]  # sizes where a runtime is significantly faster than torch
    baseline_sizes: int  # sizes where torch has matching outputs
    missing: dict[str, tuple[int, ...]]  # per leader: sizes where it has no cell with matching outputs
    mismatch_rivals: dict[str, int]  # sizes where a mismatching runtime was as fast or faster than the winner
    no_ci: dict[str, int]  # sizes where a runtime had no usable CI
    best_speedup: dict[str, float]  # per runtime: the largest speedup vs torch among its significant wins


@dataclass(frozen=True)
class BatchPick:
    """The batch to use for throughput with one runtime at one size, and the best batch it was held against.

    FPS bounds are nan where a cell has no CI (too few samples or nan bounds).
    """

    runtime: str
    size: int
    batch: int
    fps: float
    fps_low: float
    fps_high: float
    best_batch: int
    best_fps: float
    best_fps_low: float
    best_fps_high: float
    batches: tuple[int, ...]  # the batches with matching outputs, ascending
    last_gain: float  # FPS of the largest of those over the one before, minus 1 (nan with one batch)
    left_out: tuple[int, ...]  # batches measured with outputs beyond the tolerance

    @property
    def growing(self) -> bool:
        """Every smaller batch is clearly below the largest one: larger batches may give more."""
        return len(self.batches) > 1 and self.batch == self.batches[-1]

    @property
    def gain(self) -> float:
        """How much more FPS the best batch gives than the pick."""
        return self.best_fps / self.fps - 1


@dataclass(frozen=True)
class ThroughputVerdict:
    """Which runtime gives the most FPS at one size, each at its own picked batch."""

    size: int
    picks: tuple[BatchPick, ...]  # the runtime with the highest FPS first, then those within its noise
    significant: bool  # the first runtime's best FPS is clear of every other runtime's best
    mismatch_rivals: tuple[tuple[str, int], ...]  # (runtime, batch) mismatching, FPS not significantly below the best


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
    time_ratio_low: float  # from the two cells' CIs (nan without them)
    time_ratio_high: float

    @property
    def scaling(self) -> str | None:
        """'sub', 'lin' or 'super' against the pixel count; None when the CIs leave it open or are missing."""
        lo, hi = self.time_ratio_low / self.pixel_ratio, self.time_ratio_high / self.pixel_ratio
        band_lo, band_hi = SCALING_BAND
        if hi < band_lo:
            return "sub"
        if lo > band_hi:
            return "super"
        return "lin" if band_lo <= lo and hi <= band_hi else None


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """The cells with a timing (ok or mismatch, and a trimmed mean)."""
    if not len(df) or "ms" not in df:
        return df[:0]
    return df[df["status"].isin(MEASURED) & df["ms"].notna()]


def has_ci(r) -> bool:
    """Whether a cell has enough samples and finite bounds for its CI to mean anything (no ``n``: trusted)."""
    n = r.get("n", MIN_SAMPLES_FOR_CI)
    return (_finite(n) and n >= MIN_SAMPLES_FOR_CI
            and _finite(r.get("ci_low_ms", nan)) and _finite(r.get("ci_high_ms", nan)))


def faster(a, b) -> bool:
    """Whether cell ``a`` is significantly faster than cell ``b``: both have a CI and a's lies wholly below b's."""
    return has_ci(a) and has_ci(b) and a["ci_high_ms"] < b["ci_low_ms"]


def cell_verdict(cells: pd.DataFrame) -> Verdict | None:
    """Verdict for the cells of one (size, batch), or None when nothing was measured."""
    m = measured(cells).sort_values("ms")
    if m.empty:
        return None
    rows = [r for _, r in m.iterrows()]
    ok = [r for r in rows if r["status"] == MATCHING]
    bad = [r for r in rows if r["status"] != MATCHING]
    base = next((r for r in ok if r["runtime"] == BASELINE), None)
    best = ok[0] if ok else None
    runner = ok[1] if len(ok) > 1 else None
    tied = tuple(r["runtime"] for r in ok[1:] if not faster(best, r))
    return Verdict(
        size=int(rows[0]["size"]), batch=int(rows[0]["batch"]),
        winner=None if best is None else best["runtime"], significant=len(ok) > 1 and not tied, tied=tied,
        runner_up=None if runner is None else runner["runtime"],
        margin=nan if runner is None else float(runner["ms"] / best["ms"]),
        speedup=nan if best is None else float(best.get("speedup", nan)),
        speedup_low=nan if best is None else float(best.get("speedup_low", nan)),
        speedup_high=nan if best is None else float(best.get("speedup_high", nan)),
        matching=tuple(r["runtime"] for r in ok),
        faster_than_baseline=tuple(r["runtime"] for r in ok if base is not None and faster(r, base)),
        baseline_measured=base is not None,
        mismatched=tuple(r["runtime"] for r in bad),
        mismatch_rivals=tuple(r["runtime"] for r in bad if best is None or not faster(best, r)),
        no_ci=tuple(r["runtime"] for r in rows if not has_ci(r)))


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


def regime_summary(verdicts: list[Verdict], batch: int) -> RegimeSummary:
    """Counts over the verdicts of one batch; several runtimes with the same most wins are all leaders."""
    wins = Counter(v.winner for v in verdicts if v.significant)
    most = max(wins.values(), default=0)
    leaders = tuple(sorted(rt for rt, k in wins.items() if k == most)) if most else ()
    missing = {rt: tuple(v.size for v in verdicts if rt not in v.matching) for rt in leaders}
    ups = [(v.winner, v.speedup) for v in verdicts if v.significant and not math.isnan(v.speedup)]
    return RegimeSummary(
        batch=batch, sizes=len(verdicts), wins=dict(wins.most_common()), leaders=leaders,
        top=_ranked(rt for v in verdicts for rt in v.top),
        faster_than_baseline=_ranked(rt for v in verdicts for rt in v.faster_than_baseline),
        baseline_sizes=sum(v.baseline_measured for v in verdicts),
        missing={rt: s for rt, s in missing.items() if s},
        mismatch_rivals=_ranked(rt for v in verdicts for rt in v.mismatch_rivals),
        no_ci=_ranked(rt for v in verdicts for rt in v.no_ci),
        best_speedup={rt: max(s for w, s in ups if w == rt) for rt in {w for w, _s in ups}})


def _ranked(names) -> dict[str, int]:
    """Counts, most first, then by name (a stable order for the text)."""
    return dict(sorted(Counter(names).items(), key=lambda kv: (-kv[1], kv[0])))


def batch_pick(df: pd.DataFrame, runtime: str, size: int, tolerance: float = BATCH_TOLERANCE) -> BatchPick | None:
    """The smallest batch of ``runtime`` at ``size`` whose FPS is within ``tolerance`` of its best batch's and not
    significantly below it; None without a cell with matching outputs. Mismatching batches take no part."""
    g = measured(df)
    g = g[(g["runtime"] == runtime) & (g["size"] == size) & g["fps"].notna()].sort_values("batch")
    ok = [r for _, r in g.iterrows() if r["status"] == MATCHING]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["fps"])
    pick = next(r for r in ok if r is best or (
        has_ci(r) and has_ci(best) and r["fps_high"] >= best["fps_low"] and r["fps"] >= (1 - tolerance) * best["fps"]))
    return BatchPick(runtime, int(size), int(pick["batch"]), *_fps(pick), int(best["batch"]), *_fps(best),
                     batches=tuple(int(r["batch"]) for r in ok),
                     last_gain=float(ok[-1]["fps"] / ok[-2]["fps"] - 1) if len(ok) > 1 else nan,
                     left_out=tuple(int(r["batch"]) for _, r in g.iterrows() if r["status"] != MATCHING))


def _fps(r) -> tuple[float, float, float]:
    lo, hi = (float(r["fps_low"]), float(r["fps_high"])) if has_ci(r) else (nan, nan)
    return float(r["fps"]), lo, hi


def throughput_verdict(df: pd.DataFrame, size: int | None = None) -> ThroughputVerdict | None:
    """The runtime with the most FPS at ``size`` (default: the smallest size with matching outputs), each runtime
    at its best batch; the others whose best FPS CI overlaps it are tied. None without a matching cell."""
    m = measured(df)
    ok = m[m["status"] == MATCHING]
    if ok.empty:
        return None
    size = int(ok["size"].min()) if size is None else size
    picks = [p for rt in dict.fromkeys(ok["runtime"]) if (p := batch_pick(df, rt, size)) is not None]
    if not picks:
        return None
    picks.sort(key=lambda p: -p.best_fps)
    top = picks[0]
    tied = [p for p in picks[1:] if not top.best_fps_low > p.best_fps_high]  # nan bounds: tied
    bad = m[(m["status"] != MATCHING) & (m["size"] == size)]
    rivals = tuple((r["runtime"], int(r["batch"])) for _, r in bad.sort_values(["runtime", "batch"]).iterrows()
                   if not (has_ci(r) and r["fps_high"] < top.best_fps_low))
    return ThroughputVerdict(size, (top, *tied), len(picks) > 1 and not tied, rivals)


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
    both = has_ci(lo) and has_ci(hi)
    return SizeEffect(runtime, batch, int(lo["size"]), int(hi["size"]), float(lo["fps"]), float(hi["fps"]),
                      (hi["size"] / lo["size"]) ** 2, float(hi["ms"] / lo["ms"]),
                      float(hi["ci_low_ms"] / lo["ci_high_ms"]) if both else nan,
                      float(hi["ci_high_ms"] / lo["ci_low_ms"]) if both else nan)
