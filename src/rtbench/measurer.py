"""What a worker process does with a runtime group, in-process: set up the runtime, then prepare cells (session,
first call, parity against the fp32 reference, warm-up), time blocks, serve load points and finish cells.

``GroupMeasurer.handle`` answers one request of the worker protocol (rtbench.worker); a Ray actor
(rtbench.ray_lanes) runs the same class. Failure is data: every exception becomes an ``Outcome`` with a status
and a one-line reason.
"""
from __future__ import annotations

import contextlib
import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rtbench import loadgen, parity, telemetry, timing
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.spec import Cell, Sweep
from rtbench.status import Status
from rtbench.timing import BlockSpec, CudaEventClock, HostClock

# Telemetry samples a cell's 1st, 3rd, 5th... block: reading NVML's energy counter at a window's start and end cost
# 7.9 ms (median) on the H200, most of the 11 ms between two blocks of a run (benchmarks/results/h200-2026-12-02b/
# NOTES.md); since, the parent waits 1.6 ms after a block that was not sampled and 11.4 ms after one that was
# (h200-2026-12-02c/NOTES.md). Which blocks are sampled depends on their order only, so energy per image (the sampled
# windows' energy over the calls run inside them) is not biased; the rounds get the time back.
METER_EVERY = 2


@dataclass
class Outcome:
    """What preparing or measuring a cell produced, ready for the store: a status, a reason, JSON parts."""

    status: Status
    reason: str | None = None
    parts: dict = field(default_factory=dict)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def is_oom(e: BaseException) -> bool:
    return isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) or "out of memory" in str(e).lower()


def _failure(e: BaseException) -> Outcome:
    if isinstance(e, Unsupported):
        return Outcome(Status.UNSUPPORTED, str(e))
    if is_oom(e):
        _free_cuda_memory()
        return Outcome(Status.OOM, one_line(e))
    return Outcome(Status.FAILED, one_line(e))


@dataclass
class _Live:
    """A prepared cell kept alive in the worker between its blocks."""

    session: object
    clock: object
    per_call_ms: float
    sampler: object  # telemetry.Sampler (GPU) or None


class GroupMeasurer:
    """Sets up one runtime group (runtime, precision) and measures its cells, in the current process.

    Every prepared cell keeps its session until ``finish``, so the parent can interleave blocks of every cell
    of the run. When preparing a cell runs out of memory, the other sessions are closed and the preparation
    tried once more; a closed cell is prepared again (and warmed up again) at its next block.
    """

    def __init__(self, sweep: Sweep, runtime: str, precision: str, workdir: Path, refs_dir: Path | None = None):
        self.sweep, self.rt_name, self.precision, self.workdir = sweep, runtime, precision, Path(workdir)
        self.refs_dir = refs_dir  # the run's reference outputs, shared by its workers (None: each computes its own)
        self.model = None
        self.runtime = None
        self.refs: dict = {}
        self.group_setup: dict = {}
        self.setup_parts: dict[str, float] = {}  # seconds of setup()'s steps, recorded with the group's first cell
        self.live: dict[tuple, _Live] = {}
        self.samplers: dict[tuple, object] = {}  # telemetry per cell, across its blocks (and re-preparations)
        self.calls: dict[tuple, int] = {}  # calls run inside each cell's sampled blocks (energy per image)
        self.blocks: dict[tuple, int] = {}  # blocks run per cell (which of them telemetry samples)

    def _model(self):
        if self.model is None:
            from rtbench.models import resolve

            self.model = resolve(self.sweep.model, self.sweep.weights)
        return self.model

    def setup(self) -> Outcome | None:
        """Build the runtime; an Outcome that applies to every cell of the group when it cannot run. The seconds of
        each step go to ``setup_parts`` (a GPU worker took 9-26 s here on the H200 while a CPU one takes 0.6 s)."""
        t = time.perf_counter()

        def step(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            self.setup_parts[name] = now - t
            t = now

        try:
            cls = base.get(self.rt_name)
            ok, why = cls.availability(self.sweep.device)
            step("availability_s")
            if not ok:
                return Outcome(Status.UNAVAILABLE, why)
        except Exception as e:  # noqa: BLE001
            return Outcome(Status.FAILED, f"runtime setup failed: {one_line(e)}")
        if cls.needs_model and (why := self._load_model()):
            return Outcome(Status.FAILED, why)
        step("model_s")
        try:
            sweep = base.variant_sweep(self.sweep, self.rt_name)  # a variant's settings, for this group only
            self.runtime = cls(self._model() if cls.needs_model else None, sweep, self.precision, self.workdir)
        except Exception as e:  # noqa: BLE001 - a runtime that cannot start fails its cells, the sweep goes on
            out = _failure(e)
            if out.status is Status.FAILED:
                out.reason = f"runtime setup failed: {out.reason}"
            return out
        step("runtime_s")
        self.group_setup = dict(self.runtime.setup)
        return None

    def _load_model(self) -> str | None:
        """None when the model builds, else the reason (in a zoo, a model that fails to load fails its own cells)."""
        try:
            m = self._model()
            if m.has_module:
                m.module  # noqa: B018 - builds it (cached)
        except Exception as e:  # noqa: BLE001 - whatever the model's code raises
            return f"model {self.sweep.model} failed to load: {one_line(e)}"
        return None

    def handle(self, req: tuple):
        """Answer one request of the parent: ``("prepare", cell)``, ``("block", cell, spec)``, ``("finish", cell)``,
        ``("compile", cell)``, ``("load", cells, point)``."""
        return {"prepare": self.prepare, "block": self.block, "finish": self.finish,
                "compile": self.compile, "load": self.load}[req[0]](*req[1:])

    def close(self) -> None:
        for key in list(self.live):
            self._close(key)
        if self.runtime is not None:
            self.runtime.close()

    def _close(self, key: tuple) -> None:
        live = self.live.pop(key, None)
        if live is not None:
            live.session.close()

    def _references(self, x, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
        """The reference outputs for the cell's input and for the control input, once per (size, batch) and run:
        the first worker to need them stores them in the run's ``refs_dir`` (random weights are seeded, so every
        worker builds the same model), the others read them."""
        key = (cell.size, cell.batch)
        if key in self.refs:
            return self.refs[key]
        path = self.refs_dir / f"ref-{cell.size}-{cell.batch}.npz" if self.refs_dir is not None else None
        if path is not None and path.exists():
            with np.load(path) as f:
                self.refs[key] = (f["ref"], f["control"])
            return self.refs[key]
        m = self._model()
        self.refs[key] = (parity.reference(m, x, cell.device), parity.reference(m, parity.control_input(x), cell.device))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.npz")
            np.savez(tmp, ref=self.refs[key][0], control=self.refs[key][1])
            tmp.replace(path)  # atomic: another worker never reads half a file
        return self.refs[key]

    # the three requests of the parent ------------------------------------------------------------------
    def prepare(self, cell: Cell) -> Outcome:
        """Session, first call, parity, full warm-up. Status ``measuring`` when the cell is ready for blocks."""
        out = self._prepare(cell)
        if out.status is Status.OOM and self.live:  # other cells' sessions may hold the memory: free, retry once
            for key in list(self.live):
                self._close(key)
            _free_cuda_memory()
            out = self._prepare(cell)
            out.parts.setdefault("info", {})["evicted_others"] = True
        if self.group_setup and out.status is Status.MEASURING:  # group set-up is reported with its first cell
            out.parts.setdefault("setup", {}).update(self.group_setup)
            self.group_setup = {}
        return out

    def block(self, cell: Cell, spec: BlockSpec) -> timing.Block | Outcome:
        """One block of ``cell``: re-warm, then timed calls; a cell closed to free memory is prepared again."""
        if cell.key not in self.live:
            again = self.prepare(cell)
            if again.status is not Status.MEASURING:
                return again
        live = self.live[cell.key]
        n = self.blocks[cell.key] = self.blocks.get(cell.key, 0) + 1
        sampler = live.sampler if (n - 1) % METER_EVERY == 0 else None
        try:
            with sampler or contextlib.nullcontext():
                b = timing.block(live.session.call, live.clock, spec.seconds, spec.min_calls, spec.rewarm_s,
                                 live.per_call_ms)
        except Exception as e:  # noqa: BLE001 - failure is data
            self._close(cell.key)
            return _failure(e)
        if sampler is not None:
            self.calls[cell.key] = self.calls.get(cell.key, 0) + b.rewarm_calls + len(b.primary_ms)
        if live.clock.name != "cuda-events":
            b.launch_ms = np.empty(0)  # on the host clock it equals the host time: not stored twice
        return b

    def compile(self, cell: Cell) -> Outcome:
        """Build the cell's session and make its first call, then close it: nothing timed, no parity. What it
        compiles lands in the on-disk caches (rtbench.precompile), so the measuring worker's compile is a hit."""
        from rtbench.runtimes.common import make_input, sync

        model = self.runtime.model
        t0 = time.perf_counter()
        try:
            if model is not None and (why := model.check_size(cell.size)):
                return Outcome(Status.UNSUPPORTED, why)
            sess = self.runtime.session(cell, make_input(cell.batch, cell.size, model.channels if model else 3))
            try:
                sess.call()
                sync(cell.device)
            finally:
                sess.close()
        except Exception as e:  # noqa: BLE001 - the measuring worker meets the same failure and records it
            return _failure(e)
        return Outcome(Status.OK, None, {"info": {**sess.info, "precompile_s": time.perf_counter() - t0}})

    def finish(self, cell: Cell) -> dict:
        """Close the cell's session; its telemetry over every block (empty on the CPU)."""
        self._close(cell.key)
        sampler = self.samplers.pop(cell.key, None)
        calls = self.calls.pop(cell.key, 0)
        self.blocks.pop(cell.key, None)
        return sampler.summary(calls=calls, batch=cell.batch) if sampler is not None else {}

    def load(self, cells: dict[int, Cell], point: loadgen.Point) -> loadgen.Trace | Outcome:
        """One load point over the sessions of ``cells`` (one per batch bucket), served here: no message passes
        between a request and its batch. A cell closed to free memory is prepared again first."""
        for cell in cells.values():
            if cell.key not in self.live and (again := self.prepare(cell)).status is not Status.MEASURING:
                return again
        try:
            return loadgen.serve_point({b: self.live[c.key].session for b, c in cells.items()}, point)
        except Exception as e:  # noqa: BLE001 - failure is data
            for cell in cells.values():
                self._close(cell.key)
            return _failure(e)

    def _prepare(self, cell: Cell) -> Outcome:
        from rtbench.runtimes.common import make_input, sync

        self._close(cell.key)
        runtime = self.runtime
        model = runtime.model
        sess = None
        try:
            if model is not None and (why := model.check_size(cell.size)):
                return Outcome(Status.UNSUPPORTED, why)
            x = make_input(cell.batch, cell.size, model.channels if model else 3)
            t0 = time.perf_counter()
            sess = runtime.session(cell, x)
            setup = {"session_s": time.perf_counter() - t0}
            t0 = time.perf_counter()
            sess.call()
            sync(cell.device)
            setup["first_call_ms"] = (time.perf_counter() - t0) * 1e3
            par = {}
            t0 = time.perf_counter()
            if model is not None:
                ref, control = self._references(x, cell)
                par = parity.check(sess.fetch(), ref, cell.precision, model.parity_reference, control)
            parity_s = time.perf_counter() - t0
            clock = CudaEventClock(sess.stream) if sess.stream is not None else HostClock()
            w = timing.warm_up(sess.call, self.sweep.policy, clock)
            flops = model.flops_per_image(cell.size) if model is not None else None
        except Exception as e:  # noqa: BLE001 - failure is data
            if sess is not None:
                sess.close()
                sess = None
            return _failure(e)
        if cell.key not in self.samplers:
            self.samplers[cell.key] = telemetry.for_device(cell.device)  # NVML over the blocks; None on the CPU
        self.live[cell.key] = _Live(sess, clock, w.per_call_ms, self.samplers[cell.key])
        warm = {"warmup_calls": w.calls, "warmup_s": w.seconds, "warmup_stable": w.stable,
                "per_call_ms": w.per_call_ms, "clock": clock.name}
        if flops is not None:
            warm["flops_per_image"] = flops
        return Outcome(Status.MEASURING, None, {"stats": warm, "setup": setup, "parity": par,
                                                "info": {**sess.info, "parity_s": parity_s}})


def _free_cuda_memory() -> None:
    """After an out-of-memory error: drop what the failed cell held so the next cell starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
