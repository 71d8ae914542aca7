"""A runtime that only waits, for the comparison tests: it is slowed down by a known factor on request.

Loaded with ``RTBENCH_PLUGINS=compare_runtimes`` (tests/ on the path). Each call of ``delay`` lasts
``delay_factor`` (a sweep option, default 1) times a base duration of about 2 ms that varies from call to call
by a few percent (seeded), so a run with ``options={"delay_factor": "1.1"}`` is 10% slower per call than one
without, exactly, and its cells have honest round-to-round spread. The call waits on the clock, without sleeping:
a sleep overshoots by a varying amount, which would bias the factor (when each call slept and spun only its last
half-millisecond, one CI run on the 2-core host, right after the suite's two parallel processes, left one of the
three 10%-slower cells inconclusive).
"""
from __future__ import annotations

import time

import numpy as np

from rtbench.runtimes.base import Runtime, Session, register

BASE_S = 0.002
JITTER = 0.03  # relative spread of the base duration from call to call


@register
class Delay(Runtime):
    name = "delay"
    default = False
    needs_torch_module = False
    needs_model = False

    def prepare(self, cell, x) -> Session:
        factor = float(self.sweep.option("delay_factor", "1"))
        rng = np.random.default_rng(cell.batch)

        def call() -> None:
            end = time.perf_counter() + factor * BASE_S * (1 + JITTER * float(np.clip(rng.standard_normal(), -3, 3)))
            while time.perf_counter() < end:
                pass

        return Session(call=call, fetch=lambda: np.zeros(0, dtype=np.float32), info={"delay_factor": factor})
