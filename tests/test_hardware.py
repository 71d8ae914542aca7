"""Measured ceilings: the matmul is sized by time, so a ceiling costs seconds however slow the precision runs.

Slow devices are simulated: a fake matmul adds the seconds it would take to a clock instead of spending them,
so the tests are quick and their assertions do not depend on this machine's speed.
"""
from __future__ import annotations

import time

import pytest
import torch

from rtbench import hardware, timing

# bf16 emulated on a CPU without bf16 units: one 2048^3 matmul took about a minute
EMULATED_BF16_FLOPS = 2 * 2048 ** 3 / 60.0


class FakeClock:
    """Moves only when a fake call adds its simulated seconds."""

    name = "fake"

    def __init__(self) -> None:
        self.s = 0.0

    def now(self) -> float:
        return self.s

    def time(self, fn):
        t0 = self.now()
        fn()
        ms = (self.now() - t0) * 1e3
        return ms, ms, ms


class VirtualClock(FakeClock):
    """Host wall time plus the simulated seconds of fake calls (real work, such as a copy, still counts)."""

    def now(self) -> float:
        return time.perf_counter() + self.s


def fake_matmul(clock: FakeClock, flops_per_s: float, overhead_s: float = 0.0):
    """make_call for matmul_size: an n x n matmul that takes 2 n^3 / flops_per_s (+ overhead) on ``clock``."""
    sizes: list[int] = []

    def make_call(n: int):
        sizes.append(n)

        def call() -> None:
            clock.s += overhead_s + 2 * n ** 3 / flops_per_s
        return call

    return make_call, sizes


@pytest.mark.parametrize("flops_per_s, overhead_s, kind, expected_n", [
    (EMULATED_BF16_FLOPS, 0.0, "cpu", 128),  # 256 would take 0.12 s per call
    (0.5e12, 0.0, "cpu", 2048),  # a small CPU in fp32: 4096 would take 0.27 s
    (700e12, 20e-6, "cuda", 8192),  # an H200 in bf16: the cap
    (1e6, 0.0, "cpu", 64),  # slower than anything real: the smallest size
])
def test_matmul_size_follows_the_speed_of_the_device(flops_per_s, overhead_s, kind, expected_n):
    clock = FakeClock()
    make_call, sizes = fake_matmul(clock, flops_per_s, overhead_s)
    n, call = hardware.matmul_size(make_call, clock, hardware.MATMUL_N_MAX[kind])
    assert n == expected_n and sizes[-1] == n
    def cost(m: int) -> float:
        return overhead_s + 2 * m ** 3 / flops_per_s

    sizing_s = clock.s
    call()
    assert clock.s - sizing_s == pytest.approx(cost(n))  # the call returned is the chosen size's
    # a size grown past costs a first call and one timed call; the chosen one its first call and every try
    # (none at the cap, where nothing is left to decide)
    at_cap = 2 * n > hardware.MATMUL_N_MAX[kind]
    assert sizing_s == pytest.approx(sum(2 * cost(m) for m in sizes[:-1]) + (0 if at_cap else 4 * cost(n)))


def test_a_fixed_cost_per_call_does_not_stop_the_growth():
    """A loaded CPU: every call waits ~30 ms for its threads; the work only shows from n = 1024 on."""
    clock = FakeClock()
    make_call, _ = fake_matmul(clock, 50e9, overhead_s=0.03)
    n, _ = hardware.matmul_size(make_call, clock, 4096)
    assert n == 1024  # 2048 would take about 0.37 s per call (0.03 + 0.34)


def test_matmul_size_stops_at_its_time_budget():
    clock = FakeClock()
    # every call costs 12 ms whatever n is (overhead-bound): under the target, so n would keep growing
    make_call, sizes = fake_matmul(clock, 1e30, overhead_s=0.012)
    n, _ = hardware.matmul_size(make_call, clock, 8192, target_s=0.1, budget_s=0.05)
    assert clock.s <= 0.05 + 2 * 0.012  # the budget, overrun by at most the size being tried
    assert n < 8192 and sizes == [64 * 2 ** i for i in range(len(sizes))]


def test_a_slow_precision_ceiling_costs_seconds_not_minutes(monkeypatch):
    """bf16 on a CPU without bf16 units: 7 emulated 2048^3 calls used to take 7 minutes."""
    clock = VirtualClock()
    real_mm = torch.mm

    def slow_mm(a, b):
        if a.dtype != torch.bfloat16:
            return real_mm(a, b)
        clock.s += 2 * a.shape[0] ** 3 / EMULATED_BF16_FLOPS  # the time it would take, without the work
        return a

    monkeypatch.setattr(torch, "mm", slow_mm)
    monkeypatch.setattr(timing, "HostClock", lambda *a, **k: clock)
    out = hardware.measure_ceilings("cpu", ("bf16",), onnxruntime=False)
    assert clock.s < 5.0  # simulated seconds spent in bf16 matmuls, sizing and measurement together
    n = out["matmul_bf16_n"]
    assert hardware.MATMUL_N_MIN <= n < 2048
    # the figure is the rate of the n reported (real overheads of the fake call are microseconds)
    assert out["matmul_bf16_flops"] == pytest.approx(EMULATED_BF16_FLOPS, rel=0.05)
    assert out["copy_bytes_per_s"] > 0


def test_peaks_on_the_cpu_say_it_is_not_in_the_datasheet_table():
    p = hardware.peaks("cpu", measure=False)
    assert p["datasheet"] is None and p["datasheet_product"] == hardware.NOT_IN_TABLE
