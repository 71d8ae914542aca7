"""Compare two runs cell by cell: did NEW get slower than BASE, and can the two runs be compared at all?

Each cell measured in both runs gets the ratio NEW/BASE of its estimates with a 95% CI. Rounds of two runs
cannot be paired, so the interval is Welch's on the log round estimates, each side's effective rounds (rounds
discounted for their autocorrelation, ``stats.effective_rounds``) as its sample size (``stats.welch_log``).
With a threshold T:

- ``slower``: beyond 1+T with significance: the one-sided p-value of "ratio > 1+T" is at most 2.5% after Holm's
  correction over every cell compared (for a single cell: the 95% CI lies wholly above 1+T);
- ``faster``: the same below 1/(1+T);
- ``same``: the 95% CI lies inside [1/(1+T), 1+T];
- ``inconclusive``: anything else, with about how many more rounds on both sides would decide (a CI's width
  scales as 1/sqrt(effective rounds)); and every cell without an interval from rounds (one round: schema-1 runs).

A cell ``ok`` in BASE and ``failed``/``mismatch``/``oom``/``timeout`` in NEW is a regression of its own kind.
Whether the runs can be compared at all is the environment diff (``comparable.py``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from scipy import stats as sps

from rtbench import run_source, stats
from rtbench.comparable import FieldDiff, cell_differences, check_allowed, run_differences
from rtbench.errors import UserError
from rtbench.results import CellResult, Run
from rtbench.status import Status

THRESHOLD_PCT = 5.0
ALPHA = (1 - stats.CONFIDENCE) / 2  # each "beyond the threshold" claim, one-sided, family-wise after Holm
REGRESSED = (Status.FAILED, Status.MISMATCH, Status.OOM, Status.TIMEOUT)
MAX_FACTOR = 100.0  # needing more than this many times the rounds is called impractical, not counted
METHOD = "Welch on log round estimates with effective rounds"
NO_REASON = "no reason recorded"


@dataclass(frozen=True)
class Timing:
    """NEW/BASE of one cell from both runs' round estimates: ratio, 95% CI, and the one-sided p-value of the
    claim "beyond the threshold" in the direction of the estimate (slower when the ratio is above 1)."""

    ratio: float
    low: float
    high: float
    p_beyond: float
    welch: stats.Welch


def timing(base_rounds: dict, new_rounds: dict, threshold: float) -> Timing | None:
    """The ratio NEW/BASE with its interval; None when either side has fewer than two rounds."""
    w = stats.welch_log(new_rounds, base_rounds)
    if w is None:
        return None
    half, u = w.half_width(), math.log1p(threshold)
    if w.se > 0:
        p = sps.t.sf((w.d - u) / w.se, w.df) if w.d >= 0 else sps.t.cdf((w.d + u) / w.se, w.df)
    else:  # identical rounds on both sides: the estimate is the truth as far as the rounds can tell
        p = 0.0 if abs(w.d) > u else 1.0
    return Timing(math.exp(w.d), math.exp(w.d - half), math.exp(w.d + half), float(p), w)


def more_rounds_factor(t: Timing, threshold: float, m: int) -> float:
    """About how many times the present rounds (on both sides) would decide an inconclusive cell.

    The CI's half-width scales as 1/sqrt(effective rounds). A point inside the thresholds is decided ``same`` when
    the 95% half-width fits between it and the nearer threshold; a point beyond one is decided when the one-sided
    interval at Holm's strictest level (ALPHA/m) clears it. inf when the point sits on a threshold.
    """
    w, u = t.welch, math.log1p(threshold)
    gap = abs(abs(w.d) - u)
    if gap == 0 or w.se == 0:
        return math.inf
    need = w.half_width() if abs(w.d) < u else float(sps.t.ppf(1 - ALPHA / m, w.df)) * w.se
    return max(1.0, (need / gap) ** 2)


def timing_verdict(t: Timing, p_holm: float, threshold: float) -> str:
    """slower, faster, same or inconclusive for a cell with an interval (``p_holm``: Holm-adjusted ``p_beyond``)."""
    if p_holm <= ALPHA:
        return "slower" if t.ratio > 1 else "faster"
    if t.low >= 1 / (1 + threshold) and t.high <= 1 + threshold:
        return "same"
    return "inconclusive"


@dataclass(frozen=True)
class CellComparison:
    """One cell of either run: its verdict, why (an ``i18n`` message key and its fields), and the numbers."""

    key: tuple  # runtime, precision, size, batch
    verdict: str  # slower, faster, same, inconclusive, now <status>, not comparable, only in base/new, not compared
    why: str
    why_fields: dict
    base: CellResult | None
    new: CellResult | None
    timing: Timing | None = None
    p_holm: float = math.nan
    more_rounds: tuple[int, int] | None = None  # about how many more rounds in BASE and NEW would decide

    @property
    def label(self) -> str:
        runtime, precision, size, batch = self.key
        return f"{runtime} {precision} {size}px b{batch}"

    @property
    def regression(self) -> bool:
        """Slower beyond the threshold with significance, or ok in BASE and failed/mismatch/oom/timeout in NEW."""
        return self.verdict == "slower" or self.verdict.startswith("now ")

    def reason(self, _) -> str:
        """Why, in the language of the translator ``_``."""
        return _(self.why, **self.why_fields)


@dataclass
class Comparison:
    """Two runs compared: their environment differences and every cell's verdict."""

    base: Run
    new: Run
    base_source: str
    new_source: str
    threshold_pct: float
    allowed: tuple[str, ...]
    fields: list[FieldDiff]
    cells: list[CellComparison]

    @property
    def threshold(self) -> float:
        return self.threshold_pct / 100

    @property
    def comparable(self) -> bool:
        """False when the runs differ in something that changes speed and was not allowed by name."""
        return not any(f.blocking for f in self.fields)

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.regression]

    @property
    def tested(self) -> int:
        """Cells with an interval on both sides: the family Holm's correction is over."""
        return sum(c.timing is not None for c in self.cells)

    @property
    def undecided(self) -> list[CellComparison]:
        """Inconclusive cells that could still be regressions: no interval, or one reaching above 1+T."""
        return [c for c in self.cells if c.verdict == "inconclusive"
                and (c.timing is None or c.timing.high > 1 + self.threshold)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    def outcome(self) -> str:
        """What a CI gate does with it: "not comparable", "regression", "inconclusive" or "pass"."""
        if not self.comparable:
            return "not comparable"
        if self.regressions:
            return "regression"
        return "inconclusive" if self.undecided else "pass"

    @property
    def default_report_dir(self) -> Path:
        """``<folder of NEW's store>/compare-<base>-<new>/``."""
        return self.new.out_dir / f"compare-{self.base.id}-{self.new.id}"

    def to_pandas(self):
        """One row per cell: identity, both statuses and estimates, ratio NEW/BASE with its CI, verdict, reason."""
        import pandas as pd

        from rtbench.report.i18n import translator

        _ = translator("en")
        df = pd.DataFrame([_row(c, _) for c in self.cells], columns=COLUMNS)
        df.attrs.update(base=self.base.id, new=self.new.id, threshold_pct=self.threshold_pct, ci_method=METHOD,
                        comparable=self.comparable, outcome=self.outcome(),
                        fields=[f.to_dict() for f in self.fields])
        return df


COLUMNS = ["runtime", "precision", "size", "batch", "verdict", "regression", "ratio", "ratio_low", "ratio_high",
           "p_beyond", "p_holm", "reason", "base_status", "new_status", "base_ms", "base_ci_low_ms",
           "base_ci_high_ms", "new_ms", "new_ci_low_ms", "new_ci_high_ms", "base_rounds", "new_rounds",
           "base_effective_rounds", "new_effective_rounds", "more_rounds_base", "more_rounds_new"]


def _row(c: CellComparison, _) -> dict:
    t = c.timing
    row = dict(zip(COLUMNS[:4], c.key))
    row.update(verdict=c.verdict, regression=c.regression, reason=c.reason(_),
               ratio=t.ratio if t else math.nan, ratio_low=t.low if t else math.nan,
               ratio_high=t.high if t else math.nan, p_beyond=t.p_beyond if t else math.nan, p_holm=c.p_holm,
               base_effective_rounds=t.welch.n_b if t else math.nan,
               new_effective_rounds=t.welch.n_a if t else math.nan,
               more_rounds_base=c.more_rounds[0] if c.more_rounds else None,
               more_rounds_new=c.more_rounds[1] if c.more_rounds else None)
    for side, r in (("base", c.base), ("new", c.new)):
        row[f"{side}_status"] = r.status.value if r else None
        row[f"{side}_rounds"] = len(r.round_ms) if r else 0
        for k in ("ms", "ci_low_ms", "ci_high_ms"):
            v = r.stats.get(k) if r and r.measured else None
            row[f"{side}_{k}"] = math.nan if v is None else v
    return row


def compare_runs(base: Run, new: Run, threshold_pct: float = THRESHOLD_PCT, allow_different=(),
                 base_source: str | None = None, new_source: str | None = None) -> Comparison:
    """Compare two loaded runs (see the module's docstring)."""
    threshold_pct = check_threshold(threshold_pct)
    allowed = check_allowed(allow_different, base, new)
    fields = run_differences(base, new, allowed)
    by_base = {_key(c): c for c in base.cells}
    by_new = {_key(c): c for c in new.cells}
    keys = list(by_base) + [k for k in by_new if k not in by_base]
    cell_fields: list[FieldDiff] = []
    pending = []
    for k in keys:
        b, n = by_base.get(k), by_new.get(k)
        diffs = cell_differences(b, n, allowed) if b and n else []
        cell_fields += diffs
        pending.append((k, b, n, [d for d in diffs if d.blocking]))
    fields += _merge(cell_fields)
    return Comparison(base, new, base_source or base.id, new_source or new.id, threshold_pct, allowed, fields,
                      judge(pending, threshold_pct / 100))


def judge(pending: list[tuple], threshold: float) -> list[CellComparison]:
    """Every cell's verdict: (key, BASE cell or None, NEW cell or None, blocking cell differences) each."""
    out: list[CellComparison | None] = []
    family: list[tuple[int, Timing]] = []
    for k, b, n, blocking in pending:
        if b is None or n is None:
            which = "only in new" if b is None else "only in base"
            out.append(CellComparison(k, which, "cmp_why_only_" + which.split()[-1], {"status": (b or n).status.value},
                                      b, n))
        elif blocking:
            d = blocking[0]
            out.append(CellComparison(k, "not comparable", "cmp_why_cell_differs",
                                      {"key": d.key, "base": d.base, "new": d.new}, b, n))
        elif not (b.measured and n.measured):
            out.append(_status_change(k, b, n))
        elif (t := timing(b.round_ms, n.round_ms, threshold)) is None:
            out.append(CellComparison(k, "inconclusive", "cmp_why_one_round",
                                      {"base": len(b.round_ms), "new": len(n.round_ms)}, b, n))
        else:
            family.append((len(out), t))
            out.append(None)
    adjusted = stats.holm([t.p_beyond for _i, t in family]) if family else []
    for (i, t), p in zip(family, adjusted):
        k, b, n, _blocking = pending[i]
        out[i] = _timed(k, b, n, t, float(p), threshold, len(family))
    return out


def _timed(k, b: CellResult, n: CellResult, t: Timing, p: float, threshold: float, m: int) -> CellComparison:
    verdict = timing_verdict(t, p, threshold)
    fields = {"low": t.low, "high": t.high, "up": 1 + threshold, "down": 1 / (1 + threshold), "p": p, "m": m}
    if b.status is Status.OK and n.status is Status.MISMATCH:
        return CellComparison(k, "now mismatch", "cmp_why_now_mismatch", {"reason": n.reason or NO_REASON}, b, n, t, p)
    if verdict != "inconclusive":
        return CellComparison(k, verdict, f"cmp_why_{verdict}", fields, b, n, t, p)
    if t.low > 1 + threshold or t.high < 1 / (1 + threshold):
        why = "cmp_why_not_after_holm"
    else:
        why = "cmp_why_straddles"
    factor = more_rounds_factor(t, threshold, m)
    if factor > MAX_FACTOR:
        return CellComparison(k, "inconclusive", why + "_far", fields, b, n, t, p)
    more = (math.ceil(len(b.round_ms) * (factor - 1)), math.ceil(len(n.round_ms) * (factor - 1)))
    return CellComparison(k, "inconclusive", why, {**fields, "more_base": more[0], "more_new": more[1]}, b, n, t, p,
                          more)


def _status_change(k, b: CellResult, n: CellResult) -> CellComparison:
    """A cell not measured on one side (or either): a regression when it was ok and now failed, mismatched,
    ran out of memory or timed out."""
    fields = {"base": b.status.value, "new": n.status.value, "reason": n.reason or b.reason or NO_REASON}
    if b.status is Status.OK and n.status in REGRESSED:
        return CellComparison(k, f"now {n.status.value}", "cmp_why_statuses", fields, b, n)
    return CellComparison(k, "not compared", "cmp_why_statuses", fields, b, n)


def _key(c: CellResult) -> tuple:
    """Cells of two runs match on runtime, precision, size and batch (device and boundary are the runs')."""
    return c.cell.runtime, c.cell.precision, c.cell.size, c.cell.batch


def _merge(diffs: list[FieldDiff]) -> list[FieldDiff]:
    """Cell differences of the same key and values as one field, with the cells it concerns."""
    merged: dict[tuple, FieldDiff] = {}
    for d in diffs:
        k = (d.key, d.base, d.new)
        merged[k] = dataclasses.replace(merged[k], cells=merged[k].cells + d.cells) if k in merged else d
    return list(merged.values())


def check_threshold(pct) -> float:
    """A threshold in percent: a finite number above 0 and below 100."""
    try:
        v = float(str(pct).strip().rstrip("%"))
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0 < v < 100):
        raise UserError(f"threshold {pct!r} is invalid: give a percentage above 0 and below 100, e.g. --threshold 5")
    return v


def threshold_of(threshold=None, fail_on_regression=None) -> float:
    """The comparison's one threshold, in percent: ``--fail-on-regression PCT`` sets it (the table then says
    what the gate decided), ``--threshold`` otherwise, else THRESHOLD_PCT; both given and different is bad input."""
    t = check_threshold(threshold) if threshold is not None else None
    f = check_threshold(fail_on_regression) if fail_on_regression is not None else None
    if t is not None and f is not None and t != f:
        raise UserError(f"--threshold {t:g} and --fail-on-regression {f:g} differ: the gate judges cells at one "
                        "threshold; give only --fail-on-regression")
    return next((v for v in (f, t) if v is not None), THRESHOLD_PCT)


def comparison(base, new, out: Path | str = "rtbench-results", threshold_pct: float = THRESHOLD_PCT,
               allow_different=()) -> Comparison:
    """Load both sides (``run_source.load``: a Run, a run id in ``out``, ``PATH.sqlite:RUN_ID`` or a run folder)
    and compare them."""
    threshold_pct = check_threshold(threshold_pct)
    b, b_src = run_source.load(base, out, "BASE")
    n, n_src = run_source.load(new, out, "NEW")
    return compare_runs(b, n, threshold_pct, allow_different, b_src, n_src)
