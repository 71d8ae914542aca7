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
    s = stats.summarize(X)
    assert s["n"] == 10
    assert s["trimmed_mean_ms"] == pytest.approx(5.5)
    assert s["mean_ms"] == pytest.approx(14.5)
    assert s["median_ms"] == pytest.approx(5.5)  # (5 + 6) / 2
    # linear interpolation between order statistics: rank 0.9 * 9 = 8.1 -> 9 + 0.1 * (100 - 9)
    assert s["p90_ms"] == pytest.approx(9 + 0.1 * 91)
    assert s["p99_ms"] == pytest.approx(9 + 0.91 * 91)
    assert s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    # sample std: sum of squares 1^2+..+9^2 + 100^2 = 10285; minus n * mean^2 = 2102.5; over n - 1
    std = math.sqrt((10285 - 2102.5) / 9)
    assert s["std_ms"] == pytest.approx(std)
    assert s["cv"] == pytest.approx(std / 14.5)
    assert s["ci_low_ms"] <= s["trimmed_mean_ms"] <= s["ci_high_ms"]
    assert s["ci_rel_halfwidth"] == pytest.approx((s["ci_high_ms"] - s["ci_low_ms"]) / 2 / 5.5)


def test_summarize_edge_cases():
    assert stats.summarize([]) == {"n": 0}
    one = stats.summarize([4.0])
    assert one["trimmed_mean_ms"] == 4.0 and one["ci_low_ms"] == one["ci_high_ms"] == 4.0 and one["std_ms"] == 0.0


def test_tukey_mclaughlin_halfwidth_by_hand():
    x = X.copy()
    # winsorize one value at each end: 2 2 3 4 5 6 7 8 9 9, mean 5.5
    # squared deviations: 2*3.5^2 + 2.5^2 + 1.5^2 + 0.5^2 + 0.5^2 + 1.5^2 + 2.5^2 + 2*3.5^2 = 66.5
    sw = math.sqrt(66.5 / 9)
    expected = 1.959963984540054 * sw / ((1 - 2 * 0.1) * math.sqrt(10))
    assert stats.trimmed_mean_halfwidth(x) == pytest.approx(expected)
    assert expected == pytest.approx(2.106, abs=1e-3)
    np.testing.assert_array_equal(x, X)  # the caller's array is not sorted or winsorized in place
    assert stats.trimmed_mean_halfwidth(np.array([1.0, 2.0])) == math.inf


def test_bootstrap_ci_covers_the_trimmed_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small = rng.lognormal(np.log(10), 0.1, 50)
    large = rng.lognormal(np.log(10), 0.1, 2000)
    lo_s, hi_s = stats.bootstrap_ci(small)
    lo_l, hi_l = stats.bootstrap_ci(large)
    assert lo_s < stats.trimmed_mean(small) < hi_s
    assert lo_l < stats.trimmed_mean(large) < hi_l
    # the width shrinks like 1/sqrt(n): sqrt(2000/50) ~ 6.3
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3
    # the 95% CI is about 2 * 1.96 standard errors of the trimmed mean; the Tukey-McLaughlin half-width agrees
    assert (hi_l - lo_l) / 2 == pytest.approx(stats.trimmed_mean_halfwidth(large), rel=0.2)
    # seeded: a re-render gives the same interval
    assert stats.bootstrap_ci(small) == (lo_s, hi_s)
    assert stats.bootstrap_ci(np.full(20, 3.0)) == (3.0, 3.0)


def test_speedup_of_half_the_time_is_two():
    rng = np.random.default_rng(2)
    base = rng.normal(10.0, 0.5, 300)
    s = stats.speedup(base, base / 2)
    assert s["speedup"] == pytest.approx(2.0)
    assert s["speedup_low"] < 2.0 < s["speedup_high"]
    assert s["speedup_high"] - s["speedup_low"] < 0.2
    # independent samples whose centres differ by 2x: the CI covers 2
    cand = rng.normal(5.0, 0.25, 300)
    s = stats.speedup(base, cand)
    assert s["speedup_low"] < 2.0 < s["speedup_high"]
    # a slower candidate has a speedup below 1
    assert stats.speedup(base, base * 1.25)["speedup"] == pytest.approx(0.8)
    # too few samples for a CI: the ratio alone
    assert stats.speedup([4.0], [2.0]) == {"speedup": 2.0, "speedup_low": 2.0, "speedup_high": 2.0}


def test_throughput_is_batch_times_1000_over_ms():
    assert stats.throughput(4.0, 8) == pytest.approx(2000.0)
    assert stats.throughput(2.5, 1) == pytest.approx(400.0)
    assert math.isnan(stats.throughput(0.0, 4))
