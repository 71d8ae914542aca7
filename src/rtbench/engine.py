"""Runs a Sweep: cell order, setup apart from timing, parity before speed, OOM rule, resume.

Failure is data: a cell that fails is stored with its status and a one-line reason and the sweep goes on.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rtbench import parity, stats, telemetry
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.spec import Cell, Sweep, TimingPolicy
from rtbench.store import Store
from rtbench.timing import CudaEventClock, HostClock, measure

HARNESS_POLICY = TimingPolicy(warmup_min_calls=1000, warmup_min_s=0.02, min_calls=20_000, min_time_s=0.2,
                              max_time_s=0.5, ci_target=0.01)


@dataclass
class Outcome:
    """What measuring one cell produced, ready for the store."""

    status: str
    reason: str | None = None
    samples: tuple | None = None
    parts: dict = field(default_factory=dict)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(e).lower()


def _free_cuda_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def harness_cost() -> dict:
    """The timing loop's own cost per timed call, measured with the null runtime."""
    sess = base.get("null")(None, Sweep(runtimes=("null",)), "fp32", Path(".")).session(None, None)
    t = measure(sess.call, HARNESS_POLICY, HostClock())
    return {"per_call_ns": float(stats.trimmed_mean(t.samples_ms)) * 1e6, "median_ns": float(np.median(t.samples_ms)) * 1e6,
            "calls": int(len(t.samples_ms)), "loop_wall_ns": t.timed_s / len(t.samples_ms) * 1e9}


class Engine:
    """Measures the cells of one run into the store."""

    def __init__(self, sweep: Sweep, store: Store, run_id: str, workdir: Path, peak: dict,
                 progress: Callable[[Cell, str], None] | None = None):
        self.sweep, self.store, self.run_id, self.workdir, self.peak = sweep, store, run_id, Path(workdir), peak
        self.progress = progress or (lambda cell, status: None)
        self.model = None
        self.refs: dict = {}

    def run(self) -> None:
        done = self.store.done_keys(self.run_id)
        todo = [c for c in self.sweep.cells() if c.key not in done]
        groups: dict[tuple, list[Cell]] = {}
        for c in todo:
            groups.setdefault((c.runtime, c.precision), []).append(c)
        for (rt_name, precision), cells in groups.items():
            self._run_group(rt_name, precision, cells)

    def _model(self):
        if self.model is None:
            from rtbench.models import resolve

            self.model = resolve(self.sweep.model, self.sweep.weights)
        return self.model

    def _record(self, cell: Cell, out: Outcome) -> None:
        self.store.add_cell(self.run_id, cell, out.status, out.reason, out.samples, **out.parts)
        self.progress(cell, out.status)

    def _run_group(self, rt_name: str, precision: str, cells: list[Cell]) -> None:
        cls = base.get(rt_name)
        ok, why = cls.availability(self.sweep.device)
        if not ok:
            for c in cells:
                self._record(c, Outcome("unavailable", why))
            return
        try:
            runtime = cls(self._model() if cls.needs_model else None, self.sweep, precision, self.workdir)
        except Unsupported as e:
            for c in cells:
                self._record(c, Outcome("unsupported", str(e)))
            return
        except Exception as e:  # noqa: BLE001 - a runtime that cannot start fails its cells, the sweep goes on
            status = "oom" if is_oom(e) else "failed"
            for c in cells:
                self._record(c, Outcome(status, f"runtime setup failed: {one_line(e)}"))
            return
        group_setup = dict(runtime.setup)
        oom_at: dict[int, int] = {}  # size -> smallest batch that ran out of memory
        try:
            for c in cells:
                if c.size in oom_at and c.batch > oom_at[c.size]:
                    self._record(c, Outcome("skipped", f"skipped (oom at batch {oom_at[c.size]})"))
                    continue
                out = self._measure(runtime, c)
                if group_setup:  # group-level setup (export, build) is reported with the group's first cell
                    out.parts.setdefault("setup", {}).update(group_setup)
                    group_setup = {}
                if out.status == "oom":
                    oom_at[c.size] = c.batch
                self._record(c, out)
        finally:
            runtime.close()

    def _reference(self, x, cell: Cell) -> np.ndarray:
        key = (cell.size, cell.batch)
        if key not in self.refs:
            self.refs[key] = parity.reference(self._model(), x, cell.device)
        return self.refs[key]

    def _measure(self, runtime, cell: Cell) -> Outcome:
        from rtbench.runtimes.common import make_input, sync

        model = runtime.model
        if model is not None and (why := model.check_size(cell.size)):
            return Outcome("unsupported", why)
        sess = None
        try:
            x = make_input(cell.batch, cell.size, model.channels if model else 3)
            t0 = time.perf_counter()
            sess = runtime.session(cell, x)
            setup = {"session_s": time.perf_counter() - t0}
            t0 = time.perf_counter()
            sess.call()
            sync(cell.device)
            setup["first_call_ms"] = (time.perf_counter() - t0) * 1e3
            par = {}
            if model is not None:
                par = parity.compare(sess.fetch(), self._reference(x, cell), cell.precision, model.parity_reference)
            clock = CudaEventClock(sess.stream) if sess.stream is not None else HostClock()
            sampler = telemetry.for_device(cell.device)  # NVML in a background thread; None on the CPU
            with sampler or contextlib.nullcontext():
                timing = measure(sess.call, self.sweep.policy, clock)
        except Unsupported as e:
            return Outcome("unsupported", str(e))
        except Exception as e:  # noqa: BLE001 - failure is data
            if is_oom(e):
                _free_cuda_memory()
                return Outcome("oom", one_line(e))
            return Outcome("failed", one_line(e))
        finally:
            if sess is not None:
                sess.close()
        st = stats.summarize(timing.samples_ms)
        st["host"] = {k: v for k, v in stats.summarize(timing.host_ms).items() if k in ("trimmed_mean_ms", "median_ms")}
        st.update({"warmup_calls": timing.warmup_calls, "warmup_s": timing.warmup_s, "warmup_stable": timing.warmup_stable,
                   "timed_s": timing.timed_s, "capped": timing.capped, "clock": timing.clock})
        if model is not None:
            st["flops_per_image"] = model.flops_per_image(cell.size)
        status, reason = "ok", None
        if par and not par["ok"]:
            status, reason = "mismatch", par.get("reason")
        return Outcome(status, reason, (timing.samples_ms, timing.host_ms),
                       {"stats": st, "setup": setup, "parity": par, "info": sess.info,
                        "telemetry": telemetry.timed_summary(sampler, timing, cell.batch)})
