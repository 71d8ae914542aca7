"""The timing loop (timing.warm_up, timing.block) driven by a fake clock and a fake runtime.

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
        return ms, ms, ms


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


def run(durations_ms, **policy) -> tuple[timing.Warmup, FakeRuntime]:
    clock = FakeClock()
    rt = FakeRuntime(clock, durations_ms)
    return timing.warm_up(rt, TimingPolicy(**policy), clock), rt


def block(durations_ms, seconds, min_calls=1, rewarm_s=0.0, per_call_ms=None) -> tuple[timing.Block, FakeRuntime]:
    clock = FakeClock()
    rt = FakeRuntime(clock, durations_ms)
    return timing.block(rt, clock, seconds, min_calls, rewarm_s, per_call_ms), rt


# the warm-up ------------------------------------------------------------------------------------

def test_warmup_lasts_until_windows_agree_after_a_cold_start():
    # slow first calls that settle at 10 ms; windows of 5 calls, 5% tolerance
    cold = [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]
    t, rt = run(itertools.chain(cold, itertools.repeat(10.0)), warmup_min_calls=5, warmup_min_s=0.2,
                warmup_max_s=5.0, warmup_window=5, warmup_tolerance=0.05)
    # By hand: after call 16 the previous window (calls 7..11) is [40,30,20,10,10], median 20 vs 10: not stable.
    # After call 17 it is [30,20,10,10,10], median 10 == the last window's median: stable.
    assert t.stable
    assert t.calls == 17 == len(rt.calls)
    assert t.seconds == pytest.approx((sum(cold) + 7 * 10) / 1e3)
    assert rt.calls == cold + [10] * 7
    assert t.per_call_ms == 10.0  # the median of the last window: what blocks are planned with


def test_warmup_lasts_at_least_min_seconds():
    # 1 ms calls are stable after 10 calls, but the warm-up must last 0.1995 s: 200 calls
    t, _ = run(itertools.repeat(1.0), warmup_min_calls=5, warmup_min_s=0.1995, warmup_max_s=5.0)
    assert t.stable
    assert t.calls == 200


def test_warmup_lasts_at_least_min_calls():
    # 100 ms calls pass the 0.01 s minimum at once; 12 calls are still required
    t, _ = run(itertools.repeat(100.0), warmup_min_calls=12, warmup_min_s=0.01, warmup_max_s=5.0)
    assert t.stable
    assert t.calls == 12


def test_warmup_stops_at_max_seconds_when_never_stable():
    # period of 10 calls: five of 10 ms, five of 20 ms. Two consecutive windows of 5 calls always have
    # different medians (one holds >= 3 short calls, the next <= 2), so the warm-up never stabilises.
    pattern = [10.0] * 5 + [20.0] * 5
    t, rt = run(itertools.cycle(pattern), warmup_min_calls=5, warmup_min_s=0.2, warmup_max_s=1.0,
                warmup_window=5, warmup_tolerance=0.05)
    assert t.stable is False
    # it stops at the first call that brings the warm-up to 1.0 s
    cum = np.cumsum(np.tile(pattern, 20))
    expected = int(np.argmax(cum >= 1000.0)) + 1
    assert t.calls == expected == 68
    assert t.seconds == pytest.approx(cum[expected - 1] / 1e3)


def test_warmup_that_cannot_compare_two_windows_is_not_checked():
    # 400 ms calls against a 1 s cap: three calls fit, two windows of 5 would need ten: not "unstable", unchecked
    t, _ = run(itertools.repeat(400.0), warmup_min_calls=2, warmup_min_s=0.0, warmup_max_s=1.0, warmup_window=5)
    assert t.calls == 3 and t.stable is None


# the block -------------------------------------------------------------------------------------------

def test_block_times_calls_until_its_seconds_and_keeps_every_sample_in_order():
    rng = np.random.default_rng(6)
    durations = rng.uniform(1.0, 3.0, 10_000).round(4)
    b, rt = block(durations, seconds=0.3)
    n = len(b.primary_ms)
    assert len(rt.calls) == n and b.rewarm_calls == 0
    np.testing.assert_allclose(b.primary_ms, durations[:n], atol=1e-9)
    np.testing.assert_array_equal(b.primary_ms, b.host_ms)
    # the first call that brings the block to 0.3 s ends it
    cum = np.cumsum(durations)
    assert n == int(np.argmax(cum >= 300.0)) + 1
    assert b.seconds == pytest.approx(cum[n - 1] / 1e3)


def test_block_times_at_least_min_calls():
    b, _ = block(itertools.repeat(400.0), seconds=0.1, min_calls=3)
    assert len(b.primary_ms) == 3 and b.seconds == pytest.approx(1.2)


def test_rewarm_runs_untimed_calls_for_its_seconds_first():
    # 2 ms calls, 10 ms of re-warm: five untimed calls, then the timed ones start with call 6
    durations = [2.0] * 5 + [1.0] * 100
    b, rt = block(durations, seconds=0.01, rewarm_s=0.01, per_call_ms=2.0)
    assert b.rewarm_calls == 5
    assert np.all(b.primary_ms == 1.0) and len(b.primary_ms) == 10
    assert len(rt.calls) == 15 and b.seconds == pytest.approx(0.02)


def test_a_call_longer_than_the_rewarm_still_gets_one_and_a_long_call_none():
    # 50 ms calls, 20 ms of re-warm: one untimed call (its first call after another cell may redo per-shape work)
    b, rt = block(itertools.repeat(50.0), seconds=0.0, rewarm_s=0.02, per_call_ms=50.0)
    assert b.rewarm_calls == 1 and len(rt.calls) == 2
    # calls over REWARM_MAX_CALL_S: what a cold first call pays is a small share of it
    b, rt = block(itertools.repeat(150.0), seconds=0.0, rewarm_s=0.02, per_call_ms=150.0)
    assert b.rewarm_calls == 0 and len(rt.calls) == 1


def test_measure_once_warms_up_then_times_one_block():
    clock = FakeClock()
    rt = FakeRuntime(clock, itertools.chain([9.0, 9.0], itertools.repeat(1.0)))
    x = timing.measure_once(rt, clock, seconds=0.005, min_calls=3, warmup_s=0.01)
    assert list(x) == [1.0] * 5  # the warm-up ends with the call that passes 10 ms: the second 9 ms one
    assert rt.calls[:3] == [9.0, 9.0, 1.0]
