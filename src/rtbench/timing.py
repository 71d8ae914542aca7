"""THE timing loop, used for every runtime, and its clocks.

A clock has ``now()`` (seconds, for the stop rule) and ``time(fn) -> (primary_ms, host_ms)``: one call
of ``fn`` timed. On the CPU both figures are the host wall time; on CUDA the primary figure comes from
CUDA events recorded on the stream the runtime really uses, and the host figure is wall time with the
stream synchronised. Tests inject a fake clock.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from rtbench.spec import TimingPolicy
from rtbench.stats import trimmed_mean, trimmed_mean_halfwidth

CHECK_INTERVAL_S = 0.05  # how often (at most) the stop rule is evaluated


class Clock(Protocol):
    name: str

    def now(self) -> float: ...

    def time(self, fn: Callable[[], None]) -> tuple[float, float]: ...


class HostClock:
    """Host wall time (``perf_counter_ns``); ``sync`` is called inside the timed region when given."""

    name = "host"

    def __init__(self, sync: Callable[[], None] | None = None):
        self.now = time.perf_counter
        self._sync = sync
        if sync is None:
            self.time = self._time_nosync  # no branch on the hot path

    def time(self, fn):
        t0 = time.perf_counter_ns()
        fn()
        self._sync()
        ms = (time.perf_counter_ns() - t0) * 1e-6
        return ms, ms

    @staticmethod
    def _time_nosync(fn):
        t0 = time.perf_counter_ns()
        fn()
        ms = (time.perf_counter_ns() - t0) * 1e-6
        return ms, ms


class CudaEventClock:
    """CUDA events on ``stream`` (primary) plus host wall time with the stream synchronised."""

    name = "cuda-events"

    def __init__(self, stream):
        import torch

        self.now = time.perf_counter
        self.stream = stream
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time(self, fn):
        t0 = time.perf_counter_ns()
        self.start.record(self.stream)
        fn()
        self.end.record(self.stream)
        self.end.synchronize()
        host = (time.perf_counter_ns() - t0) * 1e-6
        return self.start.elapsed_time(self.end), host


@dataclass
class Timing:
    """Every sample of one cell plus how the loop ended."""

    samples_ms: np.ndarray  # primary clock
    host_ms: np.ndarray
    warmup_calls: int
    warmup_s: float
    warmup_stable: bool
    timed_s: float
    capped: bool  # stopped at max_time_s / max_calls before the CI target was met
    clock: str


def _stable(w: list[float], k: int, tol: float) -> bool:
    if len(w) < 2 * k:
        return False
    prev, last = np.median(w[-2 * k:-k]), np.median(w[-k:])
    return prev > 0 and abs(last - prev) / prev <= tol


def measure(fn: Callable[[], None], policy: TimingPolicy, clock: Clock) -> Timing:
    """Warm up until stable, then time calls until the CI target (or the cap) is reached."""
    # 1. warm-up: at least N calls and T seconds, longer until the last two windows agree
    t_w = clock.now()
    w: list[float] = []
    stable = False
    while True:
        w.append(clock.time(fn)[0])
        el = clock.now() - t_w
        if len(w) >= policy.warmup_min_calls and el >= policy.warmup_min_s:
            stable = _stable(w, policy.warmup_window, policy.warmup_tolerance)
            if stable or el >= policy.warmup_max_s:
                break
    warmup_s = clock.now() - t_w

    # 2. timed loop: keep every sample; the stop rule runs at most every CHECK_INTERVAL_S
    primary: list[float] = []
    host: list[float] = []
    tick = clock.time
    add_p, add_h = primary.append, host.append
    capped = False
    t0 = clock.now()
    next_check = 1
    while True:
        p, h = tick(fn)
        add_p(p)
        add_h(h)
        n = len(primary)
        if n < next_check:
            continue
        el = clock.now() - t0
        if n >= policy.min_calls and el >= policy.min_time_s:
            arr = np.asarray(primary)
            tm = trimmed_mean(arr)
            if tm > 0 and trimmed_mean_halfwidth(arr) / tm <= policy.ci_target:
                break
        if n >= policy.min_calls and (el >= policy.max_time_s or n >= policy.max_calls):
            capped = True  # the cap never cuts a cell below min_calls samples
            break
        per_call = el / n if el > 0 else 0.0
        step = int(CHECK_INTERVAL_S / per_call) if per_call > 0 else n
        next_check = n + max(1, min(step, max(n // 4, 1)))
        if n < policy.min_calls:
            next_check = min(next_check, policy.min_calls)
    return Timing(np.asarray(primary), np.asarray(host), len(w), warmup_s, stable, clock.now() - t0, capped,
                  clock.name)
