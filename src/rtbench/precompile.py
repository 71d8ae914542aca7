"""Compile ahead: the cells of runtimes that compile per shape (``Runtime.compiles``: torch.compile, TensorRT)
are compiled in other processes on idle cores while the measuring workers prepare what is ready.

A pre-compile process is an ordinary worker (rtbench.worker) asked to ``compile`` cells: it builds each cell's
session, calls it once and closes it, so what it compiled lands in the on-disk caches (inductor's FX-graph,
AOT-autograd, Triton and autotuning caches in ``<out>/cache/inductor``). When the engine comes to prepare such
a cell in its measuring worker, it first waits for the cell's pre-compile if one is under way (a cell no
pre-compile has taken yet is taken back: the measuring worker compiles it itself), and the measuring worker's
compile is then a cache hit. Every pre-compile process has ended before the rounds start, so none runs while
a block is timed; their first calls do overlap other cells' preparation (warm-up, parity), not measurement.

Shapes compiled in a run, by a pre-compile process or by the measuring worker itself, are listed in
``<out>/cache/precompiled.txt``; a later run compiles them in its measuring worker only, from the cache (on an
H200 the second run's pre-compile processes, each starting CUDA and tracing again for a cache hit, only slowed
the run's set-up down: by 14 s when three shapes the first run's measuring workers had compiled were
pre-compiled again, and the measuring workers waited for them).

``RTBENCH_PRECOMPILE`` sets the number of processes (0: none); by default ``(cores - 2) // 2``, at most 8, so a
2-core machine compiles in its measuring workers only.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path

from rtbench.runtimes import base
from rtbench.spec import Cell, Sweep
from rtbench.status import Status

PROCESSES_ENV = "RTBENCH_PRECOMPILE"
INDEX = "precompiled.txt"


def processes_for(n_cells: int) -> int:
    """How many pre-compile processes for ``n_cells`` cells to compile ($RTBENCH_PRECOMPILE, else by cores)."""
    cores = os.cpu_count() or 1
    given = os.environ.get(PROCESSES_ENV, "").strip()
    n = int(given) if given.isdigit() else min(8, (cores - 2) // 2)
    return max(0, min(n, n_cells))


class Precompiler:
    """Pre-compile processes working through ``cells`` in order, one thread in this process per process."""

    def __init__(self, sweep: Sweep, workdir, timeout: float, cells: list[Cell], refs_dir=None, measuring: int = 0):
        self.sweep, self.workdir, self.timeout, self.refs_dir = sweep, workdir, timeout, refs_dir
        self.index = Path(workdir) / "cache" / INDEX
        self.seen = set(self.index.read_text().splitlines()) if self.index.exists() else set()
        self.queue: deque[Cell] = deque(ahead_order([c for c in cells if _compiles(c.runtime)
                                                     and _key(sweep, c) not in self.seen]))
        self.done: dict[tuple, threading.Event] = {}
        self.results: dict[tuple, dict] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.workers: list[dict] = []  # each thread's workers, by group
        n = processes_for(len(self.queue))
        cores = os.cpu_count() or 1
        # inductor's compile processes per compiling process, these and the ``measuring`` workers that compile beside
        # them sharing the cores (None: inductor's own choice, one per core)
        self.compile_threads = max(1, (cores - 2) // (n + measuring)) if n + measuring else None
        self.threads = [threading.Thread(target=self._serve, name=f"rtbench-precompile-{i}", daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _next(self) -> Cell | None:
        with self.lock:
            if self.stopping or not self.queue:
                return None
            cell = self.queue.popleft()
            self.done[cell.key] = threading.Event()
            return cell

    def _serve(self) -> None:
        from rtbench.worker import Worker, WorkerLost

        workers: dict[tuple, Worker] = {}
        self.workers.append(workers)
        try:
            while (cell := self._next()) is not None:
                got: dict = {}
                try:
                    w = workers.get((cell.runtime, cell.precision))
                    if w is None or not w.proc.is_alive():
                        w = Worker(self.sweep, cell.runtime, cell.precision, self.workdir, self.timeout, self.refs_dir,
                                   compile_threads=self.compile_threads)
                        workers[(cell.runtime, cell.precision)] = w
                    if w.group_outcome is None:
                        out = w.request("compile", cell, timeout=self.timeout)
                        got = {"status": str(out.status), **out.parts.get("info", {})}
                        if out.status is Status.OK:
                            self.compiled(cell)
                except WorkerLost as lost:  # the measuring worker will meet it too, and record it
                    got = {"status": str(lost.status), "reason": lost.reason}
                finally:  # whatever happened, the measuring worker stops waiting for this cell
                    self.results[cell.key] = got
                    self.done[cell.key].set()
        finally:
            for w in workers.values():
                w.close()

    def compiled(self, cell: Cell) -> None:
        """Record that ``cell``'s shape is in the on-disk caches now (a pre-compile, or its measuring worker)."""
        if not _compiles(cell.runtime):
            return
        key = _key(self.sweep, cell)
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            self.index.parent.mkdir(parents=True, exist_ok=True)
            with open(self.index, "a") as f:
                f.write(key + "\n")

    def claim(self, cell: Cell) -> dict | None:
        """Before ``cell`` is prepared for measuring: wait for its pre-compile if one took it and return what it
        recorded; a cell still queued is taken back (None), and so is one no pre-compile was for."""
        with self.lock:
            event = self.done.get(cell.key)
            if event is None:
                if cell in self.queue:
                    self.queue.remove(cell)
                return None
        event.wait(self.timeout)
        return self.results.get(cell.key)

    def close(self, kill: bool = False) -> None:
        """Take no more cells; wait for those under way (or, with ``kill``, end them at once: their cells are
        recorded as failed, and a measuring worker compiles them itself) and end every pre-compile process."""
        with self.lock:
            self.stopping = True
        if kill:
            for workers in list(self.workers):
                for w in list(workers.values()):
                    w.kill()
        for t in self.threads:
            t.join()


def ahead_order(cells: list[Cell]) -> list[Cell]:
    """The order pre-compiles take cells in: what the measuring workers reach last first. A measuring worker prepares
    a size's batches in order, so the pre-compiles start from every size's last batch and its first batch comes last:
    in the cold H200 run that took them first, two measuring workers waited 26-27 s for the pre-compiles of their
    first cells, idle, while they could have compiled them themselves (a measuring worker takes back a cell no
    pre-compile has taken yet)."""
    rank: dict[tuple, int] = {}
    count: dict[tuple, int] = {}
    for c in cells:
        group = (c.runtime, c.precision, c.size)
        rank[c.key] = count.get(group, 0)
        count[group] = rank[c.key] + 1
    return sorted(cells, key=lambda c: -rank[c.key])


def _key(sweep: Sweep, cell: Cell) -> str:
    """What a compiled shape is known by in the index: model, weights, runtime variant, precision, shape, boundary,
    device, options and torch's version."""
    import torch

    return "|".join(map(str, (sweep.model, sweep.weights, cell.runtime, cell.precision, cell.size, cell.batch,
                              cell.boundary, cell.device, sorted(sweep.options), torch.__version__)))


def _compiles(runtime: str) -> bool:
    try:
        return base.get(runtime).compiles
    except Exception:  # noqa: BLE001 - an unknown runtime fails in its measuring worker, with its reason
        return False


def setup_record(got: dict | None) -> dict:
    """What a cell's set-up records of its pre-compile (empty when it had none)."""
    if not got:
        return {}
    rec = {"precompiled": got.get("status") == str(Status.OK)}
    if "precompile_s" in got:
        rec["precompile_seconds"] = got["precompile_s"]  # in parallel: not the cell's set-up time (no _s)
    if "compile_cache" in got:
        rec["precompile_cache"] = got["compile_cache"]
    return rec
