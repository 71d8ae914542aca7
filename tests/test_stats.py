"""Statistics against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtbench import stats

# 1..9 and one outlier, shuffled. Sorted: 1 2 3 4 5 6 7 8 9 100.
X = np.array([5.0, 1.0, 100.0, 3.0, 2.0, 4.0, 7.0, 6.0, 8.0, 9.0])


def test_trimmed_mean_drops_one_value_at_each_end_of_ten():
    # 10% of 10 = 1 value cut from each end: mean of 2..9 = 44 / 8
    assert stats.trimmed_mean(X) == pytest.approx(44 / 8)
    # 20 values (1..9, 11..19, 100, 110): 2 cut from each end -> 3..9 and 11..19, (42 + 135) / 16
    y = np.concatenate([X, X + 10])
    assert stats.trimmed_mean(y) == pytest.approx((42 + 135) / 16)


def test_summarize_by_hand():
    # two rounds of ten calls: X, and X with every call doubled; each round's estimate is its trimmed mean
    x = np.concatenate([X, 2 * X])
    s = stats.summarize(x, np.repeat([0, 1], 10))
    assert s["n"] == 20 and s["rounds"] == 2
    assert s["round_ms"] == {"0": pytest.approx(5.5), "1": pytest.approx(11.0)}
    assert s["statistic"] == "10% trimmed mean"
    # the estimate is the geometric mean of the rounds; the CI a t-interval with 1 df on their logs
    assert s["ms"] == pytest.approx(math.sqrt(5.5 * 11.0))
    half = 12.706204736174707 * (math.log(2) / math.sqrt(2)) / math.sqrt(2)
    assert s["ci_low_ms"] == pytest.approx(s["ms"] * math.exp(-half))
    assert s["ci_high_ms"] == pytest.approx(s["ms"] * math.exp(half))
    assert s["ci_rel_halfwidth"] == pytest.approx((s["ci_high_ms"] - s["ci_low_ms"]) / 2 / s["ms"])
    assert s["mean_ms"] == pytest.approx(1.5 * 14.5)
    assert s["median_ms"] == pytest.approx(np.median(x))
    assert s["min_ms"] == 1.0 and s["max_ms"] == 200.0
    std = float(np.std(x, ddof=1))
    assert s["std_ms"] == pytest.approx(std) and s["cv"] == pytest.approx(std / (1.5 * 14.5))


def test_rounds_of_fewer_than_ten_calls_name_the_mean():
    # blocks of 4 calls: a 10% trim cuts nothing, so the statistic is the mean, and it says so
    s = stats.summarize([1.0, 2.0, 3.0, 10.0, 1.0, 2.0, 3.0, 10.0], [0, 0, 0, 0, 1, 1, 1, 1])
    assert s["statistic"] == "mean" and s["round_ms"]["0"] == pytest.approx(4.0)
    mixed = stats.summarize(np.ones(14), [0] * 10 + [1] * 4)
    assert mixed["statistic"] == "10% trimmed mean (mean in rounds of fewer than 10 calls)"


def test_summarize_edge_cases():
    assert stats.summarize([], []) == {"n": 0, "rounds": 0}
    one = stats.summarize([4.0, 4.0], [0, 0])
    assert one["ms"] == 4.0 and one["ci_low_ms"] == one["ci_high_ms"] == 4.0 and one["rounds"] == 1


def test_effective_rounds_by_hand():
    # alternating rounds: lag-1 autocorrelation -1 (bias-corrected still <= 0): every round counts
    assert stats.effective_rounds([1.0, 2.0] * 5) == 10
    # pairs of equal rounds (0 0 1 1 ...) over 20 rounds: rho_hat = 0.05, corrected by (1 + 3 * 0.05) / 20
    v = np.array([0.0, 0.0, 1.0, 1.0] * 5)
    d = v - v.mean()
    assert float(np.sum(d[1:] * d[:-1]) / np.sum(d * d)) == pytest.approx(0.05)
    rho = 0.05 + 1.15 / 20
    assert stats.effective_rounds(v) == pytest.approx(20 * (1 - rho) / (1 + rho))
    # a steady climb is clipped at rho 0.9 and never counts as fewer than two rounds
    assert stats.effective_rounds(np.arange(40.0)) == pytest.approx(40 * 0.1 / 1.9)
    assert stats.effective_rounds(np.arange(10.0)) == 2.0
    assert stats.effective_rounds([3.0, 5.0]) == 2.0


def test_drift_ratio_tells_drift_from_noise():
    rng = np.random.default_rng(5)
    rounds = np.repeat(np.arange(8), 50)
    noise = 10 + rng.normal(0, 0.5, 400)
    drift = noise + np.repeat(rng.normal(0, 1.0, 8), 50)  # each round shifted by about 1 ms
    r_noise = stats.summarize(noise, rounds)["drift_ratio"]
    r_drift = stats.summarize(drift, rounds)["drift_ratio"]
    assert r_noise < 2 < stats.DRIFT_RATIO < r_drift
    assert math.isnan(stats.summarize(np.ones(3), [0, 1, 2])["drift_ratio"])  # blocks of one call: cannot tell


def test_paired_speedup_cancels_drift_the_unpaired_one_cannot():
    rng = np.random.default_rng(2)
    host = np.exp(rng.normal(0, 0.2, 12))  # each round's host speed, shared by both runtimes
    base = {r: 10.0 * h * (1 + rng.normal(0, 0.005)) for r, h in enumerate(host)}
    cand = {r: 5.0 * h * (1 + rng.normal(0, 0.005)) for r, h in enumerate(host)}
    p = stats.paired_speedup(base, cand)
    u = stats.unpaired_speedup(base, cand)
    assert p["speedup_low"] < 2.0 < p["speedup_high"] and p["speedup_high"] - p["speedup_low"] < 0.05
    assert u["speedup_low"] < 2.0 < u["speedup_high"]
    assert (u["speedup_high"] - u["speedup_low"]) > 10 * (p["speedup_high"] - p["speedup_low"])
    assert p["speedup_method"] == "paired, 12 rounds" and u["speedup_method"] == "unpaired (Welch)"
    # only common rounds pair; fewer than two: no paired interval
    assert stats.paired_speedup({0: 2.0, 1: 2.0}, {1: 1.0, 2: 1.0}) is None
    # with every round paired the point is the ratio of the two cells' estimates
    b, c = list(base.values()), list(cand.values())
    assert p["speedup"] == pytest.approx(stats.estimate(b)[0] / stats.estimate(c)[0])


def test_iid_speedup_of_schema_1_runs():
    rng = np.random.default_rng(2)
    base = rng.normal(10.0, 0.5, 300)
    s = stats.iid_speedup(base, base / 2)
    assert s["speedup"] == pytest.approx(2.0) and s["speedup_low"] < 2.0 < s["speedup_high"]
    assert stats.iid_speedup([4.0], [2.0])["speedup_low"] == 2.0


# calibration: the interval against a simulated host whose speed drifts -----------------------------------

def _host_speed(t: np.ndarray, tau: float, sd: float, rng) -> np.ndarray:
    """A host whose speed factor wanders (log Ornstein-Uhlenbeck, time constant ``tau`` s, log-sd ``sd``)."""
    x, out, prev = rng.normal(0, sd), np.empty(len(t)), t[0]
    for i, ti in enumerate(t):
        a = math.exp(-(ti - prev) / tau)
        x = a * x + math.sqrt(1 - a * a) * sd * rng.normal()
        out[i], prev = x, ti
    return np.exp(out)


def _cell_run(rng, rounds: int, span_s: float, calls: int, tau: float, sd: float, rho: float = 0.8):
    """One simulated cell: ``rounds`` blocks spread over ``span_s`` seconds, each ``calls`` AR(1) calls of 1 ms
    (lag-1 correlation ``rho``, 3% noise) times the host's speed at that moment."""
    t = np.linspace(0, span_s, rounds) + rng.uniform(0, span_s / rounds / 2, rounds)
    host = _host_speed(t, tau, sd, rng)
    samples, z = [], rng.normal()
    for h in host:
        for _ in range(calls):
            z = rho * z + math.sqrt(1 - rho * rho) * rng.normal()
            samples.append(h * (1 + 0.03 * z))
    return np.array(samples), np.repeat(np.arange(rounds), calls)


@pytest.mark.parametrize("tau", [5.0, 20.0])
def test_reported_interval_holds_on_a_rerun_where_the_iid_one_does_not(tau):
    """Two runs of the same cell on a drifting host (rounds interleaved over a minute): the second run's estimate
    lies within sqrt(h1^2 + h2^2) of the first's (about 95% for honest intervals) in at least 90% of pairs; an
    i.i.d. interval on the same samples (the method of schema 1) holds in under 60%."""
    rng = np.random.default_rng(7)
    held = held_iid = 0
    pairs = 200
    for _ in range(pairs):
        (x1, r1), (x2, r2) = (_cell_run(rng, 10, 60.0, 30, tau, 0.1) for _ in range(2))
        s1, s2 = stats.summarize(x1, r1), stats.summarize(x2, r2)
        h1, h2 = ((s["ci_high_ms"] - s["ci_low_ms"]) / 2 for s in (s1, s2))
        held += abs(s2["ms"] - s1["ms"]) <= math.hypot(h1, h2)
        m1, m2 = stats.trimmed_mean(x1), stats.trimmed_mean(x2)
        i1, i2 = (1.96 * np.std(x, ddof=1) / math.sqrt(len(x)) for x in (x1, x2))
        held_iid += abs(m2 - m1) <= math.hypot(i1, i2)
    assert held / pairs >= 0.90
    assert held_iid / pairs < 0.60


def test_throughput_is_batch_times_1000_over_ms():
    assert stats.throughput(4.0, 8) == pytest.approx(2000.0)
    assert stats.throughput(2.5, 1) == pytest.approx(400.0)
    assert math.isnan(stats.throughput(0.0, 4))


def test_holm_adjusts_p_values_step_down():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([0.02]) == pytest.approx([0.02])  # one test: no correction
