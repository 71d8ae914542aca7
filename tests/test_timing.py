"""The timing loop (timing.measure) driven by a fake clock and a fake runtime.

The fake runtime's call advances the fake clock by scripted durations, so every stop decision of the
loop can be worked out by hand.
"""
from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np
import pytest

from rtbench import stats, timing
from rtbench.spec import TimingPolicy


class FakeClock:
    """A clock that only moves when the fake runtime is called. Time is kept in integer nanoseconds."""

    name = "fake"

    def __init__(self) -> None:
        self.ns = 0

    def now(self) -> float:
        return self.ns * 1e-9

    def time(self, fn):
        t0 = self.ns
        fn()
        ms = (self.ns - t0) * 1e-6
        return ms, ms


class FakeRuntime:
    """A callable whose n-th call lasts the n-th scripted duration (milliseconds) on the fake clock."""

    def __init__(self, clock: FakeClock, durations_ms: Iterable[float]):
        self.clock = clock
        self.durations = iter(durations_ms)
        self.calls: list[float] = []

    def __call__(self) -> None:
        d = next(self.durations)
        self.calls.append(d)
        self.clock.ns += int(round(d * 1e6))


def run(durations_ms, **policy) -> tuple[timing.Timing, FakeRuntime]:
    clock = FakeClock()
    rt = FakeRuntime(clock, durations_ms)
    return timing.measure(rt, TimingPolicy(**policy), clock), rt


# the warm-up ------------------------------------------------------------------------------------

def test_warmup_lasts_until_windows_agree_after_a_cold_start():
    # slow first calls that settle at 10 ms; windows of 5 calls, 5% tolerance
    cold = [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]
    t, rt = run(itertools.chain(cold, itertools.repeat(10.0)), warmup_min_calls=5, warmup_min_s=0.2,
                warmup_max_s=5.0, warmup_window=5, warmup_tolerance=0.05, min_calls=10, min_time_s=0.0,
                max_time_s=10.0)
    # By hand: after call 16 the previous window (calls 7..11) is [40,30,20,10,10], median 20 vs 10: not stable.
    # After call 17 it is [30,20,10,10,10], median 10 == the last window's median: stable.
    assert t.warmup_stable
    assert t.warmup_calls == 17
    assert t.warmup_s == pytest.approx((sum(cold) + 7 * 10) / 1e3)
    # the warm-up calls are not samples: the first timed sample is call 18
    assert rt.calls[:17] == cold + [10] * 7
    assert np.all(t.samples_ms == 10.0)


def test_warmup_lasts_at_least_min_seconds():
    # 1 ms calls are stable after 10 calls, but the warm-up must last 0.1995 s: 200 calls
    t, _ = run(itertools.repeat(1.0), warmup_min_calls=5, warmup_min_s=0.1995, warmup_max_s=5.0,
               min_time_s=0.0, max_time_s=1.0)
    assert t.warmup_stable
    assert t.warmup_calls == 200


def test_warmup_lasts_at_least_min_calls():
    # 100 ms calls pass the 0.01 s minimum at once; 12 calls are still required
    t, _ = run(itertools.repeat(100.0), warmup_min_calls=12, warmup_min_s=0.01, warmup_max_s=5.0,
               min_time_s=0.0, max_time_s=10.0)
    assert t.warmup_stable
    assert t.warmup_calls == 12


def test_warmup_stops_at_max_seconds_when_never_stable():
    # period of 10 calls: five of 10 ms, five of 20 ms. Two consecutive windows of 5 calls always have
    # different medians (one holds >= 3 short calls, the next <= 2), so the warm-up never stabilises.
    pattern = [10.0] * 5 + [20.0] * 5
    t, rt = run(itertools.cycle(pattern), warmup_min_calls=5, warmup_min_s=0.2, warmup_max_s=1.0,
                warmup_window=5, warmup_tolerance=0.05, min_calls=5, min_time_s=0.0, max_time_s=10.0)
    assert not t.warmup_stable
    # it stops at the first call that brings the warm-up to 1.0 s
    cum = np.cumsum(np.tile(pattern, 20))
    expected = int(np.argmax(cum >= 1000.0)) + 1
    assert t.warmup_calls == expected == 68
    assert t.warmup_s == pytest.approx(cum[expected - 1] / 1e3)


# the timed loop -----------------------------------------------------------------------------------

def test_timed_loop_stops_at_min_calls_and_min_time_when_ci_is_met():
    # constant 100 ms calls: the CI half-width is 0 from the start, so only min_calls/min_time hold it
    t, _ = run(itertools.repeat(100.0), warmup_min_calls=10, warmup_min_s=0.0, min_calls=10, min_time_s=0.0,
               max_time_s=100.0)
    assert len(t.samples_ms) == 10 and not t.capped
    t, _ = run(itertools.repeat(100.0), warmup_min_calls=10, warmup_min_s=0.0, min_calls=10, min_time_s=1.45,
               max_time_s=100.0)
    assert len(t.samples_ms) == 15 and not t.capped
    assert t.timed_s == pytest.approx(1.5)


def test_timed_loop_stops_when_the_ci_target_is_first_reached():
    # 60 ms calls with 5% noise: the stop rule runs after every call (a call is longer than the check interval)
    rng = np.random.default_rng(3)
    durations = np.round(rng.normal(60.0, 3.0, 5000), 3)
    target = 0.01
    t, rt = run(durations, warmup_min_calls=5, warmup_min_s=0.0, warmup_tolerance=0.5, min_calls=10,
                min_time_s=0.0, max_time_s=1000.0, max_calls=100_000, ci_target=target)
    n = len(t.samples_ms)
    assert not t.capped

    def rel_halfwidth(x):
        return stats.trimmed_mean_halfwidth(x.copy()) / stats.trimmed_mean(x)

    assert rel_halfwidth(t.samples_ms) <= target
    assert rel_halfwidth(t.samples_ms[:-1]) > target  # one call earlier the target was not met
    assert 30 < n < 1000  # 5% noise needs far more than min_calls for a 1% CI


def test_timed_loop_caps_at_max_time_when_too_noisy():
    rng = np.random.default_rng(4)
    durations = rng.uniform(50.0, 150.0, 10_000).round(3)  # ~30% CV: 1% is out of reach in 3 s
    t, _ = run(durations, warmup_min_calls=5, warmup_min_s=0.0, warmup_max_s=0.5, min_calls=10,
               min_time_s=0.5, max_time_s=3.0, ci_target=0.01)
    assert t.capped
    assert 3.0 <= t.timed_s < 3.0 + 0.150  # stopped by the first call that reached the cap
    assert t.samples_ms.sum() / 1e3 == pytest.approx(t.timed_s)


def test_timed_loop_caps_at_max_calls():
    rng = np.random.default_rng(5)
    t, _ = run(rng.uniform(50.0, 150.0, 10_000).round(3), warmup_min_calls=5, warmup_min_s=0.0,
               warmup_max_s=0.5, min_calls=10, min_time_s=0.0, max_time_s=1000.0, max_calls=40, ci_target=0.01)
    assert t.capped
    assert len(t.samples_ms) == 40


def test_every_sample_is_kept_in_order():
    rng = np.random.default_rng(6)
    durations = rng.uniform(1.0, 3.0, 100_000).round(4)
    t, rt = run(durations, warmup_min_calls=5, warmup_min_s=0.05, warmup_max_s=0.2, min_calls=10,
                min_time_s=0.3, max_time_s=2.0, ci_target=0.01)
    assert len(rt.calls) == t.warmup_calls + len(t.samples_ms)
    np.testing.assert_allclose(t.samples_ms, durations[t.warmup_calls:len(rt.calls)], atol=1e-9)
    np.testing.assert_array_equal(t.samples_ms, t.host_ms)
    assert t.clock == "fake"


def test_stop_rule_is_evaluated_rarely_for_fast_calls(monkeypatch):
    # 2 us calls with 20% noise and an unreachable CI target: the loop runs to the 0.5 s cap (~250k calls)
    evaluations = []
    real = timing.trimmed_mean_halfwidth

    def counting(x, *a, **k):
        evaluations.append(len(x))
        if len(evaluations) > 1000:  # fail fast instead of running a check per call
            raise AssertionError("the stop rule is evaluated far too often")
        return real(x, *a, **k)

    monkeypatch.setattr(timing, "trimmed_mean_halfwidth", counting)
    rng = np.random.default_rng(7)
    durations = itertools.cycle(rng.uniform(0.0016, 0.0024, 10_007).round(6))
    t, _ = run(durations, warmup_min_calls=5, warmup_min_s=0.0, warmup_max_s=0.01, min_calls=10,
               min_time_s=0.0, max_time_s=0.5, max_calls=10_000_000, ci_target=1e-6)
    n = len(t.samples_ms)
    assert t.capped and n > 200_000
    # at most one check per CHECK_INTERVAL_S of timed calls plus the geometric start-up, far below one per call
    assert 0 < len(evaluations) < 0.5 / timing.CHECK_INTERVAL_S + 60
    assert len(evaluations) < n / 1000
    assert evaluations == sorted(evaluations)  # each check sees every sample so far


def test_the_cap_never_cuts_below_min_calls():
    # 400 ms calls against a 1 s cap: the cap is reached after 3 calls, but min_calls is a floor
    t, _ = run(itertools.repeat(400.0), warmup_min_calls=2, warmup_min_s=0.0, warmup_tolerance=0.5,
               min_calls=8, min_time_s=0.0, max_time_s=1.0)
    assert len(t.samples_ms) == 8
    assert t.timed_s == pytest.approx(3.2)
    # constant samples meet the CI target once min_calls is reached: not capped
    assert not t.capped
    rng = np.random.default_rng(8)
    t, _ = run(rng.uniform(200.0, 600.0, 1000).round(3), warmup_min_calls=2, warmup_min_s=0.0, warmup_tolerance=1.0,
               min_calls=8, min_time_s=0.0, max_time_s=1.0)
    assert len(t.samples_ms) == 8 and t.capped
