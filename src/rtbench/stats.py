"""Statistics of a cell's rounds, as pure functions.

A cell is measured in rounds (rtbench.rounds): each round is one short block of calls, and the rounds of all
cells are interleaved over the run. Calls inside a block are not independent (they drift and correlate), but
blocks measured far apart in time, in a shuffled order, are close to it; so:

- a round's estimate is the 10% trimmed mean of its block (the seed report's statistic; with fewer than 10
  calls it cuts nothing and is the plain mean, and the cell's ``statistic`` says so);
- the cell's estimate is the geometric mean of its round estimates, and its 95% CI a Student-t interval on
  their logarithms (times are positive and their spread multiplicative; the interval never goes below zero),
  so whatever varies between rounds (host speed, clocks, neighbours) widens it. Rounds close in time can still
  share a slow drift (a host whose speed changes over tens of seconds): the interval then uses the effective
  number of rounds, ``R (1 - rho) / (1 + rho)``, from the lag-1 autocorrelation ``rho`` of the round estimates
  in time order (bias-corrected for short series), so a drifting cell gets the wide interval it has earned;
- a speedup is paired: the runtime and the baseline ran in adjacent blocks of each round, the interval comes
  from the per-round log ratios, so drift common to both cancels (with every round paired, the point is the
  ratio of the two cells' estimates);
- cells that cannot be paired (another run's, say) are compared by Welch's test on their log round estimates,
  each side's effective rounds as its sample size (``welch_log``); many such comparisons at once are corrected
  with Holm's step-down method (``holm``).

Schema-1 runs (one block per cell) keep the i.i.d. bootstrap interval they were stored with.
"""
from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

TRIM = 0.1
CONFIDENCE = 0.95
MIN_TRIMMED = 10  # below this many calls a 10% trimmed mean cuts nothing: the block's statistic is the mean
DRIFT_RATIO = 3.0  # between-round spread over what within-block noise explains, above which a cell drifts
N_RESAMPLES = 2000
SEED = 12345
# scipy >= 1.15 takes ``rng``; older releases take ``random_state``
_RNG_ARG = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


def trimmed_mean(x, trim: float = TRIM, axis: int = -1):
    """Mean after cutting ``trim`` of the samples from each end."""
    return sps.trim_mean(x, trim, axis=axis)


def statistic_name(block_calls) -> str:
    """What a cell's round estimates are: the 10% trimmed mean, or the mean where blocks were too short to trim."""
    n = np.asarray(block_calls)
    if len(n) and n.min() >= MIN_TRIMMED:
        return "10% trimmed mean"
    if len(n) and n.max() < MIN_TRIMMED:
        return "mean"
    return "10% trimmed mean (mean in rounds of fewer than 10 calls)"


MAX_RHO = 0.9  # the autocorrelation taken at most (the effective number of rounds is then R / 19)


def effective_rounds(values) -> float:
    """How many independent rounds a series of round estimates (in time order) is worth: ``R (1-rho)/(1+rho)``.

    ``rho`` is the lag-1 autocorrelation, corrected for its downward bias in short series (Kendall:
    E[rho_hat] ~ rho - (1 + 3 rho) / R), clipped to [0, MAX_RHO]; never fewer than 2 rounds.
    """
    v = np.asarray(values, dtype=float)
    r = len(v)
    d = v - v.mean()
    ss = float(np.sum(d * d))
    if r < 3 or ss <= 0:
        return float(r)
    rho = float(np.sum(d[1:] * d[:-1])) / ss
    rho = min(max(rho + (1 + 3 * rho) / r, 0.0), MAX_RHO)
    return max(r * (1 - rho) / (1 + rho), 2.0)


def interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """Mean, CI low, CI high and effective rounds of round estimates in time order (a point below 2 values).

    A Student-t interval with the effective number of rounds (``effective_rounds``) as the sample size.
    """
    v = np.asarray(values, dtype=float)
    m = float(np.mean(v)) if len(v) else math.nan
    if len(v) < 2:
        return m, m, m, float(len(v))
    n = effective_rounds(v)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * np.std(v, ddof=1) / math.sqrt(n))
    return m, m - half, m + half, n


def estimate(round_values) -> tuple[float, float, float, float]:
    """A cell's estimate from its round estimates (time order): geometric mean, CI low, CI high, effective rounds."""
    m, lo, hi, n = interval(np.log(np.asarray(round_values, dtype=float)))
    return math.exp(m), math.exp(lo), math.exp(hi), n


def allowed_difference(ci_a: tuple[float, float], ci_b: tuple[float, float]) -> float:
    """How far two estimates may lie apart and still agree: sqrt(h_a^2 + h_b^2) of their 95% CIs' half-widths
    (both measurements' noise)."""
    return math.hypot((ci_a[1] - ci_a[0]) / 2, (ci_b[1] - ci_b[0]) / 2)


def relative_halfwidth(round_values) -> float:
    """Half the CI's width over the estimate (inf with fewer than two rounds): what the stop rule compares."""
    if len(round_values) < 2:
        return math.inf
    m, lo, hi, _n = estimate(round_values)
    return (hi - lo) / 2 / m


def round_estimates(samples_ms, rounds) -> dict[int, float]:
    """Each round's estimate: the trimmed mean of the samples of that round (the mean below 10 samples)."""
    x, r = np.asarray(samples_ms, dtype=float), np.asarray(rounds)
    return {int(k): float(trimmed_mean(x[r == k])) for k in np.unique(r)}


def summarize(samples_ms, rounds) -> dict:
    """Every statistic of one cell from its samples and the round each was taken in (milliseconds).

    ``ms`` is the headline: the geometric mean of the round estimates, with ``ci_low_ms``/``ci_high_ms``.
    """
    x, r = np.asarray(samples_ms, dtype=float), np.asarray(rounds)
    if len(x) == 0:
        return {"n": 0, "rounds": 0}
    est = round_estimates(x, r)
    values = np.array(list(est.values()))
    calls = np.array([int(np.sum(r == k)) for k in est])
    m, lo, hi, n_eff = estimate(values)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    mean = float(np.mean(x))
    out = {
        "n": int(len(x)),
        "rounds": len(est),
        "statistic": statistic_name(calls),
        "effective_rounds": n_eff,
        "ms": m,
        "ci_low_ms": lo,
        "ci_high_ms": hi,
        "ci_rel_halfwidth": (hi - lo) / 2 / m if m > 0 else math.nan,
        "round_ms": {str(k): v for k, v in est.items()},
        "mean_ms": mean,
        "median_ms": float(np.median(x)),
        "p90_ms": float(np.percentile(x, 90)),
        "p99_ms": float(np.percentile(x, 99)),
        "min_ms": float(np.min(x)),
        "max_ms": float(np.max(x)),
        "std_ms": std,
        "cv": std / mean if mean > 0 else math.nan,
    }
    out["drift_ratio"] = drift_ratio(x, r, est)
    return out


def drift_ratio(x: np.ndarray, r: np.ndarray, est: dict[int, float]) -> float:
    """Between-round spread of the round estimates over the spread that within-block noise alone would give.

    About 1 when rounds differ only by sampling noise; far above 1 when the cell's time follows something that
    changes between rounds (host CPU speed, clocks, neighbours). NaN when it cannot be told (under two rounds,
    or blocks of a single call).
    """
    if len(est) < 2:
        return math.nan
    within = [np.var(x[r == k], ddof=1) / np.sum(r == k) for k in est if np.sum(r == k) > 1]
    if len(within) < 2 or not np.mean(within) > 0:
        return math.nan
    between = np.var(list(est.values()), ddof=1)
    return float(math.sqrt(between / np.mean(within)))


def paired_speedup(baseline_rounds: dict, candidate_rounds: dict, confidence: float = CONFIDENCE) -> dict | None:
    """Speedup of the candidate over the baseline from rounds where both ran (adjacent blocks of one round).

    The point is the geometric mean of the per-round ratios baseline/candidate; the CI a t-interval on their
    logarithms (``interval``). None with fewer than two common rounds.
    """
    common = sorted(set(baseline_rounds) & set(candidate_rounds))
    if len(common) < 2:
        return None
    logs = [math.log(baseline_rounds[k] / candidate_rounds[k]) for k in common]
    m, lo, hi, _n = interval(logs, confidence)
    return {"speedup": math.exp(m), "speedup_low": math.exp(lo), "speedup_high": math.exp(hi),
            "speedup_method": f"paired, {len(common)} rounds"}


class Welch(NamedTuple):
    """Welch's comparison of two cells' round estimates on the log scale: ``d`` is the mean log round estimate of
    ``a`` minus that of ``b`` (so ``exp(d)`` is the ratio of their estimates), ``se`` its standard error, ``df``
    the Welch-Satterthwaite degrees of freedom, ``n_a``/``n_b`` the effective rounds used as sample sizes."""

    d: float
    se: float
    df: float
    n_a: float
    n_b: float

    def half_width(self, confidence: float = CONFIDENCE) -> float:
        """Half the two-sided ``confidence`` interval of ``d``."""
        return float(sps.t.ppf(0.5 + confidence / 2, self.df)) * self.se


def welch_log(a_rounds: dict, b_rounds: dict) -> Welch | None:
    """Welch's test on the log round estimates of two cells measured independently (different runs, or rounds
    that cannot be paired), each side's effective rounds (``effective_rounds``) as its sample size. None when
    either side has fewer than two rounds."""
    a, b = (np.log(np.array(list(r.values()), dtype=float)) for r in (a_rounds, b_rounds))
    if len(a) < 2 or len(b) < 2:
        return None
    na, nb = effective_rounds(a), effective_rounds(b)
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1)) if se > 0 else na + nb - 2
    return Welch(float(a.mean() - b.mean()), se, df, na, nb)


def unpaired_speedup(baseline_rounds: dict, candidate_rounds: dict, confidence: float = CONFIDENCE) -> dict | None:
    """Speedup from two cells' round estimates taken as independent: the ratio of their estimates, with Welch's
    interval on the difference of the mean log round estimates (``welch_log``). For cells of different runs,
    whose rounds cannot be paired; wider than the paired interval when the two cells drift together."""
    w = welch_log(baseline_rounds, candidate_rounds)
    if w is None:
        return None
    half = w.half_width(confidence)
    return {"speedup": math.exp(w.d), "speedup_low": math.exp(w.d - half), "speedup_high": math.exp(w.d + half),
            "speedup_method": "unpaired (Welch)"}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: a hypothesis is rejected at family-wise level alpha when its adjusted
    p-value is at most alpha. Holds for any dependence between the tests."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def iid_speedup(baseline_ms, candidate_ms, trim: float = TRIM) -> dict:
    """Schema-1 runs (one block per cell): ratio of trimmed means with an i.i.d. bootstrap CI (not calibrated)."""
    b = np.asarray(baseline_ms, dtype=float)
    c = np.asarray(candidate_ms, dtype=float)
    ratio = float(trimmed_mean(b, trim) / trimmed_mean(c, trim))
    out = {"speedup": ratio, "speedup_low": ratio, "speedup_high": ratio, "speedup_method": "i.i.d. bootstrap"}
    if len(b) < 2 or len(c) < 2:
        return out

    def stat(x, y, axis):
        return trimmed_mean(x, trim, axis=axis) / trimmed_mean(y, trim, axis=axis)

    res = sps.bootstrap((b, c), stat, paired=False, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                        method="percentile", vectorized=True, batch=200, **{_RNG_ARG: np.random.default_rng(SEED)})
    return {**out, "speedup_low": float(res.confidence_interval.low), "speedup_high": float(res.confidence_interval.high)}


def throughput(ms: float, batch: int) -> float:
    """Images per second at this batch size (the seed's FPS = batch / latency)."""
    return batch * 1000.0 / ms if ms > 0 else math.nan
