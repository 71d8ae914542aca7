"""Requests under load: a seeded Poisson arrival schedule, and the open-loop executor that serves it with
dynamic batching over a runtime's prepared sessions.

Open loop: a request arrives at its scheduled time whether or not the runtime has kept up, and its latency is
completion time minus *scheduled* arrival time, so time a request spent waiting behind a slow call is counted
(no coordinated omission). The executor is one loop in the process that holds the sessions (rtbench.worker):
no message passes between a request and its batch. Arrivals that fall during a call are admitted, with their
scheduled times, as soon as it returns, as they would be queued by a server with one model instance.

Dynamic batching: a batch is dispatched when ``max_batch`` requests wait, or when the oldest has waited
``max_delay_ms``. A batch of k requests runs as the smallest prepared *bucket* (batch size) of at least k: a
partial batch is padded, and a compiled graph, CUDA graph or engine of that shape is reused, never rebuilt.
Requests carry no payload of their own: each batch runs its bucket's prepared input per the sweep's boundary.
A batch is complete when its outputs are ready: on a GPU the runtime's stream is synchronised.
"""
from __future__ import annotations

import gc
import math
import time
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rtbench.errors import UserError

MAX_BATCH = 4096  # the largest --max-batch taken at all (memory is checked apart, per model and device)
SPIN_S = 0.1  # the executor busy-waits for events closer than this, and sleeps only until this close to farther ones
LEAD_S = 0.005  # from the start of a point to its schedule's time zero
CHUNK = 65536  # exponential gaps are drawn in chunks of this many, so a seed gives one sequence at any rate


@dataclass(frozen=True)
class Batching:
    """A dynamic-batching policy: dispatch at ``max_batch`` requests or when the oldest waited ``max_delay_ms``."""

    max_batch: int
    max_delay_ms: float

    def __post_init__(self) -> None:
        if not (isinstance(self.max_batch, int) and 1 <= self.max_batch <= MAX_BATCH):
            raise UserError(f"--max-batch {self.max_batch} is invalid: give whole numbers from 1 to {MAX_BATCH}, "
                            "e.g. --max-batch 8,16")
        if not (math.isfinite(self.max_delay_ms) and self.max_delay_ms >= 0):
            raise UserError(f"--max-delay-ms {self.max_delay_ms:g} is invalid: give milliseconds of at least 0, "
                            "e.g. --max-delay-ms 0,2")

    @property
    def buckets(self) -> tuple[int, ...]:
        """The prepared batch sizes: powers of two below ``max_batch``, and ``max_batch``."""
        return tuple(b for b in (2 ** i for i in range(13)) if b < self.max_batch) + (self.max_batch,)

    def bucket(self, k: int) -> int:
        """The bucket a batch of ``k`` requests runs as: the smallest of at least ``k``."""
        return next(b for b in self.buckets if b >= k)

    @property
    def label(self) -> str:
        return f"max-batch {self.max_batch} / {self.max_delay_ms:g} ms"

    def to_dict(self) -> dict:
        return {"max_batch": self.max_batch, "max_delay_ms": self.max_delay_ms}


def arrivals(rate: float, duration_s: float, seed: int, after_s: float = 0.0, at_least: int = 0) -> np.ndarray:
    """Seconds from time zero of a Poisson process of ``rate`` per second over ``duration_s``, from ``seed``, and
    on past ``duration_s`` until at least ``at_least`` arrivals fall at or after ``after_s`` (LoadGen's rule: a
    point lasts its minimum duration *and* its minimum query count).

    The gaps are unit exponentials drawn from the seed, divided by the rate: the schedule of one seed at another
    rate is the same sequence scaled, so points at several rates (and every runtime at one rate) see the same
    pattern of bursts and lulls; a longer schedule of one seed starts with the shorter one.
    """
    rng = np.random.default_rng(seed)
    target, start = rate * duration_s, rate * after_s
    parts, t = [], np.zeros(0)
    # n: the arrivals before the duration's end, or up to the at_least-th at or after after_s, whichever is later
    while (n := max(int(np.searchsorted(t, target)), int(np.searchsorted(t, start)) + at_least)) >= len(t):
        parts.append(rng.standard_exponential(CHUNK))
        t = np.cumsum(np.concatenate(parts))
    return t[:n] / rate


@dataclass
class Trace:
    """What happened to every request of a point; times in seconds from the schedule's time zero."""

    arrival_s: np.ndarray  # scheduled arrival
    dispatch_s: np.ndarray  # when its batch was dispatched (NaN: never)
    done_s: np.ndarray  # when its batch's outputs were ready (NaN: never)
    batch: np.ndarray  # requests in its batch (0: never dispatched)
    bucket: np.ndarray  # the prepared batch size its batch ran as (0: never dispatched)
    end_s: float  # when the executor stopped
    cut: bool  # the drain limit stopped it with requests left undone


def wait_until(t: float, clock: Callable[[], float] = time.perf_counter) -> None:
    """Busy-wait until ``t`` (sleeping first only until SPIN_S before it): wakes within a microsecond or so.

    Not sleeping is the cheaper choice for the measurement: a sleep overshoots (~0.1 ms), and a process that
    sleeps lends its core to others, whose caches the runtime's next call then pays for (on a 2-core CPU VM a
    call after 4 ms asleep took 40-60 us more than back to back). A server that blocks between sparse requests
    pays that; rtbench reports the runtime's latency without it.
    """
    rest = t - clock()
    if rest > SPIN_S:
        time.sleep(rest - SPIN_S)
    while clock() < t:
        pass


def serve(arrival_s: np.ndarray, run: Callable[[int], None], batching: Batching, drain_s: float,
          clock: Callable[[], float] = time.perf_counter, wait: Callable[[float], None] = wait_until) -> Trace:
    """Serve the schedule ``arrival_s`` (sorted seconds) open-loop: ``run(bucket)`` runs one batch and returns
    when its outputs are ready. Requests still undone ``drain_s`` after the last arrival are left (``cut``)."""
    n = len(arrival_s)
    t0 = clock() + LEAD_S
    at = (np.asarray(arrival_s, dtype=float) + t0).tolist()
    max_b, delay = batching.max_batch, batching.max_delay_ms / 1e3
    bucket_of = [0] + [batching.bucket(k) for k in range(1, max_b + 1)]
    end = (at[-1] if n else t0) + drain_s
    first, size, disp, done = [], [], [], []
    head = arrived = 0
    while head < n:
        now = clock()
        arrived = bisect_right(at, now, arrived)
        queued = arrived - head
        if queued >= max_b or (queued and now >= at[head] + delay):
            k = min(queued, max_b)
            run(bucket_of[k])
            t = clock()
            first.append(head)
            size.append(k)
            disp.append(now)
            done.append(t)
            head += k
            if t > end:
                break
            continue
        wake = at[arrived] if arrived < n else math.inf
        wait(min(wake, at[head] + delay) if queued else wake)
    return _trace(np.asarray(arrival_s, dtype=float), t0, first, size, disp, done, bucket_of, clock() - t0, head < n)


def _trace(arrival_s, t0, first, size, disp, done, bucket_of, end_s, cut) -> Trace:
    """Per-request arrays from the per-batch records (requests never dispatched get NaN and 0)."""
    n, k = len(arrival_s), np.asarray(size, dtype=int)
    served = int(k.sum())
    per = (lambda v, fill: np.concatenate([np.repeat(np.asarray(v, dtype=float) - t0, k), np.full(n - served, fill)]))
    sizes = np.concatenate([np.repeat(k, k), np.zeros(n - served, dtype=int)])
    buckets = np.asarray(bucket_of)[sizes]
    return Trace(arrival_s, per(disp, math.nan), per(done, math.nan), sizes, buckets, float(end_s), bool(cut))


@dataclass(frozen=True)
class Point:
    """One load point as the worker runs it: ``rate`` requests per second over ``warmup_s`` + ``duration_s``."""

    rate: float
    duration_s: float
    warmup_s: float
    seed: int
    batching: Batching
    drain_s: float
    min_requests: int = 0  # after the warm-up; the point runs on past its duration until they have arrived


def serve_point(sessions: dict, point: Point) -> Trace:
    """Run ``point`` over prepared sessions (one per bucket of its batching policy), in this process.

    Python's cyclic garbage collector is off while the point runs (after one collection), so that its pauses,
    which belong to the harness, do not land on the runtime's latencies.
    """
    calls = {b: (s.call, s.stream.synchronize if s.stream is not None else None) for b, s in sessions.items()}

    def run(bucket: int) -> None:
        call, sync = calls[bucket]
        call()
        if sync is not None:
            sync()

    schedule = arrivals(point.rate, point.warmup_s + point.duration_s, point.seed, point.warmup_s, point.min_requests)
    gc.collect()
    gc.disable()
    try:
        return serve(schedule, run, point.batching, point.drain_s)
    finally:
        gc.enable()
