"""Statistics of per-call samples, as pure functions.

The headline is the 10% trimmed mean (the statistic of the seed report: 10% of samples cut from each
end). Confidence intervals come from the bootstrap (scipy), seeded so a report re-renders the same.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
from scipy import stats as sps

TRIM = 0.1
CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 12345
BATCH = 200  # resamples held in memory at once (cells can have 10^5 samples)
_Z95 = 1.959963984540054
# scipy >= 1.15 takes ``rng``; older releases take ``random_state``
_RNG_ARG = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


def _bootstrap(data: tuple, statistic, **kw):
    return sps.bootstrap(data, statistic, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                         vectorized=True, batch=BATCH, **{_RNG_ARG: np.random.default_rng(SEED)}, **kw)


def trimmed_mean(x, trim: float = TRIM, axis: int = -1):
    """Mean after cutting ``trim`` of the samples from each end."""
    return sps.trim_mean(x, trim, axis=axis)


def trimmed_mean_halfwidth(x: np.ndarray, trim: float = TRIM) -> float:
    """Fast 95% CI half-width of the trimmed mean (Tukey-McLaughlin, winsorized variance).

    Used by the timing loop's stop rule, where a bootstrap per check would be too slow.
    """
    n = len(x)
    if n < 3:
        return math.inf
    s = np.sort(x)
    g = int(math.floor(trim * n))
    if g:
        s[:g] = s[g]
        s[n - g:] = s[n - g - 1]
    sw = float(np.std(s, ddof=1))
    return _Z95 * sw / ((1 - 2 * trim) * math.sqrt(n))


def bootstrap_ci(x: np.ndarray, trim: float = TRIM) -> tuple[float, float]:
    """Percentile-bootstrap 95% CI of the trimmed mean."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        v = float(x[0]) if len(x) else math.nan
        return v, v
    res = _bootstrap((x,), lambda a, axis: trimmed_mean(a, trim, axis=axis))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(samples_ms, trim: float = TRIM) -> dict:
    """Every statistic of one cell's samples (milliseconds)."""
    x = np.asarray(samples_ms, dtype=float)
    if len(x) == 0:
        return {"n": 0}
    tm = float(trimmed_mean(x, trim))
    lo, hi = bootstrap_ci(x, trim)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    mean = float(np.mean(x))
    return {
        "n": int(len(x)),
        "trimmed_mean_ms": tm,
        "ci_low_ms": lo,
        "ci_high_ms": hi,
        "ci_rel_halfwidth": (hi - lo) / 2 / tm if tm > 0 else math.nan,
        "mean_ms": mean,
        "median_ms": float(np.median(x)),
        "p90_ms": float(np.percentile(x, 90)),
        "p99_ms": float(np.percentile(x, 99)),
        "min_ms": float(np.min(x)),
        "max_ms": float(np.max(x)),
        "std_ms": std,
        "cv": std / mean if mean > 0 else math.nan,
    }


def speedup(baseline_ms, candidate_ms, trim: float = TRIM) -> dict:
    """Speedup of candidate over baseline: ratio of trimmed means, with an independent-samples bootstrap CI."""
    b = np.asarray(baseline_ms, dtype=float)
    c = np.asarray(candidate_ms, dtype=float)
    ratio = float(trimmed_mean(b, trim) / trimmed_mean(c, trim))
    if len(b) < 2 or len(c) < 2:
        return {"speedup": ratio, "speedup_low": ratio, "speedup_high": ratio}

    def stat(x, y, axis):
        return trimmed_mean(x, trim, axis=axis) / trimmed_mean(y, trim, axis=axis)

    res = _bootstrap((b, c), stat, paired=False)
    return {"speedup": ratio, "speedup_low": float(res.confidence_interval.low),
            "speedup_high": float(res.confidence_interval.high)}


def throughput(trimmed_mean_ms: float, batch: int) -> float:
    """Images per second at this batch size (the seed's FPS = batch / latency)."""
    return batch * 1000.0 / trimmed_mean_ms if trimmed_mean_ms > 0 else math.nan
