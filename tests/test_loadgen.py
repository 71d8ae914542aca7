"""The load generator and its statistics, without runtimes: the arrival schedule, the open-loop executor on a fake
clock (dispatch decisions worked out by hand), LoadGen's early-stopping bound, validity, the search, parsing."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rtbench.errors import UserError
from rtbench.loadgen import LEAD_S, Batching, Trace, arrivals, serve
from rtbench.loadspec import AUTO_FRACTIONS, check_fits, make_spec, parse_qps, parse_slo
from rtbench.loadstats import (early_stopping_bound, mean_in_flight, min_queries, next_rate, percentile_interval,
                               point_stats, slow_allowed)

pytestmark = pytest.mark.serial  # times real work: runs alone, after the others (see the Makefile)


# ---- the arrival schedule --------------------------------------------------------------------------------
def test_arrivals_are_poisson_by_a_kolmogorov_smirnov_test():
    rate = 500.0
    t = arrivals(rate, 20.0, seed=7)
    gaps = np.diff(t) * rate  # unit exponentials if the process is Poisson
    assert sps.kstest(gaps, "expon").pvalue > 0.01
    assert abs(len(t) - rate * 20) < 4 * math.sqrt(rate * 20)  # the count is Poisson(rate * T)
    assert t[0] >= 0 and t[-1] < 20.0 and np.all(np.diff(t) > 0)
    # the same test tells a schedule that is not Poisson: evenly spaced requests at the same rate
    even = np.diff(np.arange(len(t)) / rate) * rate
    assert sps.kstest(even, "expon").pvalue < 1e-6


def test_arrivals_are_reproducible_from_their_seed_and_scale_with_the_rate():
    a = arrivals(300.0, 5.0, seed=3)
    assert np.array_equal(a, arrivals(300.0, 5.0, seed=3))
    assert not np.array_equal(a[:100], arrivals(300.0, 5.0, seed=4)[:100])
    # one seed is one pattern of bursts and lulls at every rate: twice the rate is the same sequence at half the times
    assert np.allclose(arrivals(600.0, 2.5, seed=3), a / 2)


def test_a_low_rate_schedule_runs_on_until_a_p99_claim_has_its_requests():
    """LoadGen's rule: a point lasts its duration *and* its minimum query count; the longer schedule of a seed
    starts with the shorter one, so extending a point does not change the requests it already had."""
    short = arrivals(100.0, 2.2, seed=0)  # ~200 requests in 2.2 s
    assert 150 < len(short) < 260
    long = arrivals(100.0, 2.2, seed=0, after_s=0.2, at_least=459)
    assert int(np.sum(long >= 0.2)) == 459 and long[-1] > 2.2
    assert np.array_equal(long[:len(short)], short)
    # a rate high enough to meet the count within the duration is not extended
    assert np.array_equal(arrivals(1000.0, 2.2, seed=0, after_s=0.2, at_least=459), arrivals(1000.0, 2.2, seed=0))
    # its counted window is measured to its last arrival: the arrival rate stays the offered one
    st = point_stats(_trace(long, np.full(len(long), 0.001)), 100.0, 2.0, 0.2, 5.0, 1.0)
    assert st["n"] == 459 and st["valid"], st["validity"]
    assert st["duration_s"] == pytest.approx(long[-1] - 0.2) and st["arrived_qps"] == pytest.approx(100, rel=0.15)


# ---- the executor ----------------------------------------------------------------------------------------
class FakeClock:
    """Time moves only when the runtime runs (its service time per bucket) or the executor waits."""

    def __init__(self, service_s: dict[int, float]):
        self.t, self.service_s, self.calls = 0.0, service_s, []

    def now(self) -> float:
        return self.t

    def run(self, bucket: int) -> None:
        self.calls.append((round(self.t, 9), bucket))
        self.t += self.service_s[bucket]

    def wait(self, until: float) -> None:
        self.t = max(self.t, until)


def test_a_batch_goes_at_max_batch_or_when_its_oldest_waited_max_delay():
    c = FakeClock({1: 0.001, 2: 0.001})
    arr = np.array([0.0, 0.001, 0.0015, 0.010])
    tr = serve(arr, c.run, Batching(2, 2.0), drain_s=1.0, clock=c.now, wait=c.wait)
    t0 = LEAD_S  # the fake clock starts at 0: time zero of the schedule is LEAD_S
    # 0.001: two wait -> a batch of 2; 0.0015 waits its 2 ms alone (after the batch ended); 0.010 waits 2 ms too
    assert c.calls == [(round(t0 + 0.001, 9), 2), (round(t0 + 0.0035, 9), 1), (round(t0 + 0.012, 9), 1)]
    assert np.allclose((tr.done_s - tr.arrival_s) * 1e3, [2.0, 1.0, 3.0, 3.0])
    assert np.allclose((tr.dispatch_s - tr.arrival_s) * 1e3, [1.0, 0.0, 2.0, 2.0])
    assert list(tr.batch) == [2, 2, 1, 1] and list(tr.bucket) == [2, 2, 1, 1] and not tr.cut


def test_partial_batches_run_padded_as_the_next_bucket():
    b = Batching(12, 1.0)
    assert b.buckets == (1, 2, 4, 8, 12)
    assert [b.bucket(k) for k in (1, 2, 3, 5, 8, 9, 12)] == [1, 2, 4, 8, 8, 12, 12]
    c = FakeClock({n: 0.01 for n in b.buckets})
    tr = serve(np.zeros(5) + np.arange(5) * 1e-6, c.run, b, drain_s=1.0, clock=c.now, wait=c.wait)
    # five requests within 1 ms, dispatched together when the first has waited 1 ms, run as the bucket of 8
    assert c.calls == [(round(LEAD_S + 0.001, 9), 8)]
    assert list(tr.batch) == [5] * 5


def test_open_loop_latency_counts_from_the_scheduled_arrival():
    # a runtime ten times too slow: requests keep arriving every ms while each call takes 10 ms; admitted late,
    # each still counts from its own scheduled time (no coordinated omission), so latency grows with the backlog
    c = FakeClock({1: 0.010})
    arr = np.arange(20) * 0.001
    tr = serve(arr, c.run, Batching(1, 0.0), drain_s=1.0, clock=c.now, wait=c.wait)
    lat = (tr.done_s - tr.arrival_s) * 1e3
    assert np.allclose(lat, [10 * (i + 1) - i for i in range(20)])
    assert len(c.calls) == 20


def test_the_drain_limit_leaves_requests_undone():
    c = FakeClock({1: 0.010})
    tr = serve(np.arange(100) * 0.0001, c.run, Batching(1, 0.0), drain_s=0.05, clock=c.now, wait=c.wait)
    assert tr.cut and np.isnan(tr.done_s[-1]) and tr.batch[-1] == 0
    assert 5 <= np.isfinite(tr.done_s).sum() < 100


# ---- statistics --------------------------------------------------------------------------------------------
def test_early_stopping_needs_459_requests_for_p99_as_loadgen():
    assert min_queries(99) == 459 and min_queries(99.9) == 4603
    assert slow_allowed(458) == -1 and slow_allowed(459) == 0
    for n in (459, 1000, 5000, 20000):  # the largest t with P(Binomial(n, 0.01) <= t) <= 1%
        t = slow_allowed(n)
        assert sps.binom.cdf(t, n, 0.01) <= 0.01 < sps.binom.cdf(t + 1, n, 0.01)
    x = np.arange(1, 1001, dtype=float)  # 1..1000 ms: 2 slow requests allowed at n = 1000
    assert slow_allowed(1000) == 2 and early_stopping_bound(x) == 998.0
    assert math.isnan(early_stopping_bound(x[:400]))


def test_percentile_intervals_are_scipys_order_statistic_intervals():
    x = np.sort(np.random.default_rng(1).lognormal(size=3000))
    lo, hi = percentile_interval(x, 99)
    ci = sps.quantile_test(x, q=float(np.percentile(x, 99)), p=0.99).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert math.isnan(percentile_interval(x[:100], 99.9)[1])  # too few requests to reach an upper end


def _trace(arrival, latency_s, batch=1) -> Trace:
    arrival = np.asarray(arrival, float)
    done = arrival + np.asarray(latency_s, float)
    return Trace(arrival, arrival.copy(), done, np.full(len(arrival), batch), np.full(len(arrival), batch),
                 float(np.nanmax(done)), False)


def test_a_steady_point_is_valid_and_littles_law_holds():
    arr = arrivals(1000.0, 2.2, seed=0)
    st = point_stats(_trace(arr, np.full(len(arr), 0.004)), 1000.0, 2.0, 0.2, 5.0, 1.0)
    assert st["valid"] and st["validity"] == "valid" and not st["saturated"]
    assert st["p99_ms"] == pytest.approx(4.0) and st["es_p99_ms"] == pytest.approx(4.0)
    assert st["meets_slo"] and st["passes"]
    assert st["mean_in_flight"] == pytest.approx(1000 * 0.004, rel=0.05)  # L = lambda W
    assert st["littles_ratio"] == pytest.approx(1.0, rel=0.05)
    assert not point_stats(_trace(arr, np.full(len(arr), 0.006)), 1000.0, 2.0, 0.2, 5.0, 1.0)["passes"]


def test_too_few_requests_and_a_growing_queue_make_a_point_invalid():
    arr = arrivals(100.0, 2.2, seed=0)  # ~200 counted requests: fewer than the 459 a p99 claim needs
    st = point_stats(_trace(arr, np.full(len(arr), 0.001)), 100.0, 2.0, 0.2, 5.0, 1.0)
    assert not st["valid"] and "too few requests" in st["validity"] and not st["passes"]
    assert math.isnan(st["es_p99_ms"])
    # served at 80% of the arrival rate: the backlog grows; achieved QPS falls short and the queue delay trends up
    arr = np.arange(2200) / 1000.0
    done = np.arange(2200) / 800.0 + 0.001
    tr = Trace(arr, done - 0.001, done, np.ones(2200, int), np.ones(2200, int), float(done[-1]), False)
    st = point_stats(tr, 1000.0, 2.0, 0.2, None, 1.0)
    assert st["saturated"] and st["queue_grows"] and st["achieved_qps"] < 0.9 * st["arrived_qps"]
    assert st["validity"].startswith("saturated")


def test_mean_in_flight_is_the_time_average_of_requests_in_the_system():
    # two requests: [0, 2] and [1, 4] s, window [0, 4]: 2 + 3 = 5 request-seconds over 4 s; one still in flight
    assert mean_in_flight([0.0, 1.0], [2.0, 4.0], 0.0, 4.0) == pytest.approx(1.25)
    assert mean_in_flight([0.0, 1.0], [2.0, math.nan], 0.0, 4.0) == pytest.approx(1.25)


def test_the_search_bisects_between_the_best_pass_and_the_lowest_failure_above_it():
    assert next_rate({100.0: True, 200.0: True, 300.0: False, 400.0: False}, 0.02) == 250.0
    assert next_rate({100.0: True, 200.0: False}, 0.02) == 150.0
    assert next_rate({100.0: False, 200.0: False}, 0.02) is None  # nothing passed: nothing to refine
    assert next_rate({100.0: True, 200.0: True}, 0.02) is None  # the highest tried passed: no bracket
    assert next_rate({100.0: True, 101.0: False}, 0.02) is None  # within the tolerance


# ---- parsing -----------------------------------------------------------------------------------------------
def test_slo_needs_a_unit_and_rates_must_be_above_zero():
    assert parse_slo("15ms") == 15.0 and parse_slo("0.015s") == pytest.approx(15.0) and parse_slo("800us") == 0.8
    assert parse_slo(None) is None
    for bad in ("15", "ms", "-3ms", "0ms", "15 minutes"):
        with pytest.raises(UserError, match="--slo"):
            parse_slo(bad)
    assert parse_qps("auto") == ((), AUTO_FRACTIONS)
    assert parse_qps("200,100,50%") == ((100.0, 200.0), (0.5,))
    for bad in ("0", "-5", "x", "0%", ""):
        with pytest.raises(UserError, match="--qps"):
            parse_qps(bad)


def test_batching_options_are_checked_before_anything_runs():
    spec = make_spec(max_batch="4,16", max_delay_ms="0,2.5")
    assert [(b.max_batch, b.max_delay_ms) for b in spec.policies] == [(4, 0.0), (4, 2.5), (16, 0.0), (16, 2.5)]
    for kwargs, flag in (({"max_delay_ms": "-1"}, "--max-delay-ms"), ({"max_delay_ms": "x"}, "--max-delay-ms"),
                         ({"max_batch": "0"}, "--max-batch"), ({"max_batch": "100000"}, "--max-batch"),
                         ({"duration": 0}, "--duration")):
        with pytest.raises(UserError, match=flag):
            make_spec(**kwargs)
    with pytest.raises(UserError, match="does not fit"):
        check_fits(make_spec(max_batch="4096"), 4096, "cpu")
    check_fits(make_spec(max_batch="64"), 224, "cpu")  # fits
