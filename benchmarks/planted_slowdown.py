"""A plugin that plants a known slowdown in one runtime, to check that `rtbench compare` catches it.

    RTBENCH_PLUGINS=planted_slowdown RTBENCH_SLOWDOWN=onnxruntime:1.10 PYTHONPATH=src:benchmarks \\
        python -m rtbench run --runtimes torch,onnxruntime --out DIR

Each call of the named runtime is followed by a wait of (factor - 1) times the call's own duration on the host
clock, so it lasts ``factor`` times as long. That is the runtime's whole time where its call waits for the work
to finish (ONNX Runtime's ``Run`` on CUDA, every CPU runtime); an asynchronous runtime (eager torch on CUDA)
would only have its launch slowed. The cells record ``planted_slowdown`` in their info; nothing in the
environment fingerprint changes, as with a real regression inside a library.
"""
from __future__ import annotations

import os
import time

from rtbench.runtimes import base

ENV = "RTBENCH_SLOWDOWN"
name, _, factor_text = os.environ.get(ENV, "").partition(":")
if not name or not factor_text:
    raise RuntimeError(f"{ENV} must be RUNTIME:FACTOR, e.g. onnxruntime:1.10")
FACTOR = float(factor_text)
Original = base.get(name)


class Slowed(Original):
    """The named runtime, each call stretched to FACTOR times its own duration."""

    def prepare(self, cell, x) -> base.Session:
        s = super().prepare(cell, x)
        call = s.call

        def slowed() -> None:
            t0 = time.perf_counter()
            call()
            end = t0 + FACTOR * (time.perf_counter() - t0)
            while time.perf_counter() < end:
                pass

        s.call = slowed
        s.info = {**s.info, "planted_slowdown": FACTOR}
        return s


Slowed.__name__ = f"Slowed{Original.__name__}"
base.register(Slowed)
