"""THE timing loop, used for every runtime, and its clocks.

A clock has ``now()`` (seconds) and ``time(fn) -> (primary_ms, host_ms, launch_ms)``: one call of ``fn``
timed. On the CPU all three are the host wall time; on CUDA the primary figure comes from CUDA events
recorded on the stream the runtime really uses, ``host_ms`` is wall time with the stream synchronised, and
``launch_ms`` the wall time until ``fn`` returned (the host's time to enqueue the work: when it is close to
the event time, the GPU waited for the host). Tests inject a fake clock.

A cell is warmed up fully once (``warm_up``), then measured in short blocks (``block``), each after a brief
re-warm; rtbench.rounds decides when each block runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from rtbench.spec import TimingPolicy


class Clock(Protocol):
    name: str

    def now(self) -> float: ...

    def time(self, fn: Callable[[], None]) -> tuple[float, float, float]: ...


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
        t1 = time.perf_counter_ns()
        self._sync()
        ms = (time.perf_counter_ns() - t0) * 1e-6
        return ms, ms, (t1 - t0) * 1e-6

    @staticmethod
    def _time_nosync(fn):
        t0 = time.perf_counter_ns()
        fn()
        ms = (time.perf_counter_ns() - t0) * 1e-6
        return ms, ms, ms


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
        t1 = time.perf_counter_ns()
        self.end.record(self.stream)
        self.end.synchronize()
        host = (time.perf_counter_ns() - t0) * 1e-6
        return self.start.elapsed_time(self.end), host, (t1 - t0) * 1e-6


@dataclass
class Warmup:
    """How a cell's first warm-up went. ``stable`` is None when it could not be checked (too few calls)."""

    calls: int
    seconds: float
    stable: bool | None
    per_call_ms: float  # median of the last window: what one call costs, for planning blocks


@dataclass(frozen=True)
class BlockSpec:
    """What one block is asked for: ``seconds`` of timed calls (at least ``min_calls``) after a re-warm."""

    seconds: float
    min_calls: int = 1
    rewarm_s: float = 0.0


@dataclass
class Block:
    """The timed calls of one block, after ``rewarm_calls`` untimed ones."""

    primary_ms: np.ndarray
    host_ms: np.ndarray
    launch_ms: np.ndarray
    rewarm_calls: int
    seconds: float  # wall time of the whole block, re-warm included


def _stable(w: list[float], k: int, tol: float) -> bool | None:
    """Whether the medians of the last two windows of ``k`` calls agree within ``tol``; None with too few calls."""
    if len(w) < 2 * k:
        return None
    prev, last = np.median(w[-2 * k:-k]), np.median(w[-k:])
    return bool(prev > 0 and abs(last - prev) / prev <= tol)


def warm_up(fn: Callable[[], None], policy: TimingPolicy, clock: Clock) -> Warmup:
    """At least N calls and T seconds, longer (up to the cap) until the last two windows agree."""
    t0 = clock.now()
    w: list[float] = []
    stable: bool | None = None
    while True:
        w.append(clock.time(fn)[0])
        el = clock.now() - t0
        if len(w) >= policy.warmup_min_calls and el >= policy.warmup_min_s:
            stable = _stable(w, policy.warmup_window, policy.warmup_tolerance)
            if stable or el >= policy.warmup_max_s:
                break
    return Warmup(len(w), clock.now() - t0, stable, float(np.median(w[-policy.warmup_window:])))


def timed_calls(fn: Callable[[], None], clock: Clock, seconds: float, min_calls: int = 1):
    """THE loop: time calls until ``min_calls`` are done and ``seconds`` have passed; every sample is kept."""
    primary: list[float] = []
    host: list[float] = []
    launch: list[float] = []
    add_p, add_h, add_l, tick, now = primary.append, host.append, launch.append, clock.time, clock.now
    end = now() + seconds
    while True:
        p, h, la = tick(fn)
        add_p(p)
        add_h(h)
        add_l(la)
        if len(primary) >= min_calls and now() >= end:
            return np.asarray(primary), np.asarray(host), np.asarray(launch)


REWARM_MAX_CALL_S = 0.1  # calls longer than this get no re-warm: a cold start is a small share of them


def block(fn: Callable[[], None], clock: Clock, seconds: float, min_calls: int = 1, rewarm_s: float = 0.0,
          per_call_ms: float | None = None) -> Block:
    """One block: untimed re-warm calls for ``rewarm_s`` (at least one: caches, clocks, thread pools and per-shape
    state settle after other cells ran), then timed calls for ``seconds``. Calls longer than
    REWARM_MAX_CALL_S get no re-warm: what the first one pays is a small share of it."""
    t0 = clock.now()
    rewarm = 0
    if rewarm_s > 0 and (per_call_ms is None or per_call_ms * 1e-3 < REWARM_MAX_CALL_S):
        end = t0 + rewarm_s
        while True:
            clock.time(fn)
            rewarm += 1
            if clock.now() >= end:
                break
    p, h, la = timed_calls(fn, clock, seconds, min_calls)
    return Block(p, h, la, rewarm, clock.now() - t0)


def measure_once(fn: Callable[[], None], clock: Clock, seconds: float, min_calls: int = 1,
                 warmup_s: float = 0.0) -> np.ndarray:
    """Warm up for ``warmup_s`` then time one block: the primary samples (for rtbench's own ceilings and harness
    cost, which are not cells)."""
    if warmup_s > 0:
        timed_calls(fn, clock, warmup_s, 1)
    return timed_calls(fn, clock, seconds, min_calls)[0]

