"""Statistics of a load point, as pure functions: percentiles with intervals, LoadGen's early-stopping bound,
validity, and the search for the highest rate that meets a latency SLO.

Early stopping (the idea of MLPerf LoadGen's criterion). A claim "the p-th percentile of latency is at most L"
is confirmed at confidence c by n requests of which t were slower than L when, were the true percentile exactly
L (each request slower with probability 1 - p), seeing t or fewer slow ones would have had probability at most
1 - c: ``P(Binomial(n, 1 - p) <= t) <= 1 - c``. With no slow request at all this needs
``n >= log(1 - c) / log(p)``: 459 requests for p99 at c = 0.99. The largest t that passes at n gives the
*early-stopping estimate* of the percentile: the (n - t)-th smallest latency, a bound the true percentile stays
under with confidence c. rtbench judges an SLO by that bound, not by the point estimate.

Percentile intervals come from order statistics (distribution-free): [x_(l), x_(u)] with l and u the
``confidence`` quantiles of Binomial(n, q). Both assume independent requests; latencies under load are
correlated through the queue, so near saturation the intervals are narrower than they should be (LoadGen
assumes the same), and a saturated point is invalid anyway.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
CONFIDENCE = 0.95  # percentile intervals
ES_CONFIDENCE = 0.99  # LoadGen's early-stopping confidence
SLO_PERCENTILE = 99.0
SATURATION = 0.98  # achieved below this share of the arrival rate: saturated
GROWTH = 0.02  # the median queueing delay rising by this share of the point's length: the queue grows


def pct_name(q: float) -> str:
    """'p99', 'p99_9' (a column-safe name for a percentile)."""
    return "p" + f"{q:g}".replace(".", "_")


def min_queries(q: float = SLO_PERCENTILE, c: float = ES_CONFIDENCE) -> int:
    """Requests needed to confirm the q-th percentile with none slower: ``ceil(log(1 - c) / log(q / 100))``."""
    return math.ceil(math.log(1 - c) / math.log(q / 100))


def slow_allowed(n: int, q: float = SLO_PERCENTILE, c: float = ES_CONFIDENCE) -> int:
    """The most requests of ``n`` that may be slower than a bound for the bound to hold at the q-th percentile
    with confidence ``c``; -1 when even none would not do (too few requests)."""
    if n <= 0:
        return -1
    p_slow, alpha = 1 - q / 100, 1 - c
    t = int(sps.binom.ppf(alpha, n, p_slow))
    while t >= 0 and sps.binom.cdf(t, n, p_slow) > alpha:
        t -= 1
    return t


def early_stopping_bound(sorted_ms: np.ndarray, q: float = SLO_PERCENTILE, c: float = ES_CONFIDENCE) -> float:
    """LoadGen's early-stopping estimate of the q-th percentile (NaN with too few requests)."""
    t = slow_allowed(len(sorted_ms), q, c)
    return float(sorted_ms[len(sorted_ms) - t - 1]) if t >= 0 else math.nan


def percentile_interval(sorted_ms: np.ndarray, q: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A distribution-free ``confidence`` interval of the q-th percentile from order statistics (NaN ends where
    the requests are too few to reach them)."""
    n = len(sorted_ms)
    if n == 0:
        return math.nan, math.nan
    a = (1 - confidence) / 2
    lo, hi = (int(sps.binom.ppf(a, n, q / 100))), int(sps.binom.ppf(1 - a, n, q / 100)) + 1
    return (float(sorted_ms[lo - 1]) if lo >= 1 else math.nan), (float(sorted_ms[hi - 1]) if hi <= n else math.nan)


def mean_in_flight(arrival_s, done_s, t0: float, t1: float) -> float:
    """Time-average number of requests arrived and not yet complete over [t0, t1] (done NaN: still in flight)."""
    a = np.asarray(arrival_s, dtype=float)
    d = np.where(np.isnan(done_s), t1, done_s)
    overlap = np.clip(np.minimum(d, t1) - np.maximum(a, t0), 0, None)
    return float(overlap.sum() / (t1 - t0))


def point_stats(trace, rate: float, duration_s: float, warmup_s: float, slo_ms: float | None,
                min_duration_s: float) -> dict:
    """Everything rtbench reports of one point, from requests that arrived after the warm-up.

    A request never completed (the drain limit cut the point) counts with the time it had waited by then, a
    lower bound of its latency; its point is saturated.
    """
    w = trace.arrival_s >= warmup_s
    arrival, done, disp = trace.arrival_s[w], trace.done_s[w], trace.dispatch_s[w]
    n, undone = int(w.sum()), int(np.isnan(done).sum())
    lat = (np.where(np.isnan(done), trace.end_s, done) - arrival) * 1e3
    queue = (np.where(np.isnan(disp), trace.end_s, disp) - arrival) * 1e3
    # the point ran past its duration when its requests were too few for the p99 claim (LoadGen's minimum count)
    duration_s = max(duration_s, float(arrival[-1]) - warmup_s) if n else duration_s
    st: dict = {"offered_qps": rate, "duration_s": duration_s, "warmup_s": warmup_s, "n": n, "undone": undone,
                "arrived_qps": n / duration_s, "cut": trace.cut}
    last = float(np.nanmax(done)) if n > undone else math.nan
    st["achieved_qps"] = (n - undone) / max(duration_s, last - warmup_s) if n > undone else 0.0
    s = np.sort(lat)
    for q in PERCENTILES:
        name = pct_name(q)
        st[f"{name}_ms"] = float(np.percentile(s, q)) if n else math.nan
        st[f"{name}_low_ms"], st[f"{name}_high_ms"] = percentile_interval(s, q)
    st["es_p99_ms"] = early_stopping_bound(s)
    st["mean_ms"] = float(lat.mean()) if n else math.nan
    st["mean_queue_ms"] = float(queue.mean()) if n else math.nan
    st["mean_compute_ms"] = st["mean_ms"] - st["mean_queue_ms"]
    st["p99_queue_ms"] = float(np.percentile(queue, 99)) if n else math.nan
    sizes, buckets = _batches(disp, trace.batch[w], trace.bucket[w])
    st["batches"] = int(len(sizes))
    st["mean_batch"] = float(sizes.mean()) if len(sizes) else math.nan
    st["padding"] = float(1 - sizes.sum() / buckets.sum()) if len(sizes) else math.nan  # share of padded slots
    st["mean_in_flight"] = mean_in_flight(trace.arrival_s, trace.done_s, warmup_s, warmup_s + duration_s)
    st["littles_ratio"] = st["mean_in_flight"] / (rate * st["mean_ms"] / 1e3) if n else math.nan
    st.update(_growth(arrival, queue, duration_s))
    st.update(validity(st, min_duration_s))
    st["slo_ms"] = slo_ms
    st["meets_slo"] = bool(slo_ms is not None and st["es_p99_ms"] <= slo_ms)
    st["passes"] = bool(st["valid"] and st["meets_slo"])
    return st


def _batches(dispatch_s: np.ndarray, batch: np.ndarray, bucket: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Requests and bucket of each batch dispatched (a batch's requests are adjacent and share a dispatch time)."""
    first = np.flatnonzero(np.diff(dispatch_s, prepend=-1.0) != 0)
    first = first[batch[first] > 0]
    return batch[first], bucket[first]


def _growth(arrival_s: np.ndarray, queue_ms: np.ndarray, duration_s: float) -> dict:
    """Whether the queue grows: the median queueing delay of the point's last third exceeds that of its first
    third by more than GROWTH of the point's length (and 1 ms). Medians, so that a stall of the host, which
    delays a burst of requests, does not count as growth."""
    if len(arrival_s) < 30:
        return {"queue_growth_ms": math.nan, "queue_grows": False}
    a, b = np.quantile(arrival_s, [1 / 3, 2 / 3])
    growth = float(np.median(queue_ms[arrival_s >= b]) - np.median(queue_ms[arrival_s <= a]))
    return {"queue_growth_ms": growth, "queue_grows": bool(growth > max(1.0, GROWTH * duration_s * 1e3))}


def validity(st: dict, min_duration_s: float) -> dict:
    """LoadGen's sense of a valid point: enough requests for the p99 claim, the minimum duration met, and not
    saturated (achieved below SATURATION of the arrival rate, the queue growing, or requests left undone)."""
    need = min_queries()
    saturated = bool(st["achieved_qps"] < SATURATION * st["arrived_qps"] or st["queue_grows"] or st["undone"] > 0)
    why = []
    if saturated:
        why.append("saturated")
    if st["n"] < need:
        why.append(f"too few requests for the p99 claim ({st['n']} of {need})")
    if st["duration_s"] < min_duration_s:
        why.append(f"shorter than the minimum duration ({st['duration_s']:g} s < {min_duration_s:g} s)")
    return {"saturated": saturated, "min_requests": need, "valid": not why, "validity": "; ".join(why) or "valid"}


def next_rate(passed: dict[float, bool], tolerance: float) -> float | None:
    """The next rate of a binary search for the highest rate that passes: the midpoint between the highest rate
    that passed and the lowest above it that did not; None when there is no such pair or they are within
    ``tolerance`` (relative) of each other."""
    ok = [r for r, p in passed.items() if p]
    if not ok:
        return None
    lo = max(ok)
    above = [r for r, p in passed.items() if not p and r > lo]
    if not above or (min(above) - lo) / lo <= tolerance:
        return None
    return (lo + min(above)) / 2


def best_rate(passed: dict[float, bool]) -> float | None:
    """The highest rate that passed (None when none did)."""
    return max((r for r, p in passed.items() if p), default=None)
