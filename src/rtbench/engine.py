"""Runs a Sweep: cell order, worker processes, timeouts, OOM rule, resume.

Failure is data: a cell that fails is stored with its status and a one-line reason and the sweep goes on.
Every runtime group (runtime, precision) is measured in its own worker process (worker.py); a worker that
crashes or exceeds the cell timeout is killed, its cell stored as ``failed`` or ``timeout``, and a fresh
worker continues with the group's next cell. This process is the store's only writer: each Outcome is
committed the moment it arrives, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from rtbench import stats
from rtbench.runtimes import base
from rtbench.spec import DEFAULT_CELL_TIMEOUT_S, Cell, Sweep, TimingPolicy, check_cell_timeout
from rtbench.store import Store
from rtbench.timing import HostClock, measure
from rtbench.worker import Outcome, Worker, WorkerLost, is_oom, one_line  # noqa: F401  (re-exported)

HARNESS_POLICY = TimingPolicy(warmup_min_calls=1000, warmup_min_s=0.02, min_calls=20_000, min_time_s=0.2,
                              max_time_s=0.5, ci_target=0.01)


def harness_cost() -> dict:
    """The timing loop's own cost per timed call, measured with the null runtime."""
    sess = base.get("null")(None, Sweep(runtimes=("null",)), "fp32", Path(".")).session(None, None)
    t = measure(sess.call, HARNESS_POLICY, HostClock())
    return {"per_call_ns": float(stats.trimmed_mean(t.samples_ms)) * 1e6, "median_ns": float(np.median(t.samples_ms)) * 1e6,
            "calls": int(len(t.samples_ms)), "loop_wall_ns": t.timed_s / len(t.samples_ms) * 1e9}


def skip_reason(oom_at: dict[int, int], cell: Cell) -> str | None:
    """The OOM rule: once a batch ran out of memory at a size, larger batches of that size are skipped."""
    if cell.size in oom_at and cell.batch > oom_at[cell.size]:
        return f"skipped (oom at batch {oom_at[cell.size]})"
    return None


class Engine:
    """Measures the cells of one run into the store, one supervised worker process per runtime group."""

    def __init__(self, sweep: Sweep, store: Store, run_id: str, workdir: Path, peak: dict,
                 progress: Callable[[Cell, str], None] | None = None,
                 cell_timeout: float = DEFAULT_CELL_TIMEOUT_S):
        self.sweep, self.store, self.run_id, self.workdir, self.peak = sweep, store, run_id, Path(workdir), peak
        self.progress = progress or (lambda cell, status: None)
        self.cell_timeout = check_cell_timeout(cell_timeout)

    def run(self) -> None:
        stored = self.store.cells(self.run_id, with_samples=False)
        done = {(c["runtime"], c["precision"], c["size"], c["batch"], c["boundary"]) for c in stored}
        groups: dict[tuple, list[Cell]] = {}
        for c in self.sweep.cells():
            if c.key not in done:
                groups.setdefault((c.runtime, c.precision), []).append(c)
        for (rt_name, precision), cells in groups.items():
            oom_at = {}  # size -> batch that ran out of memory, carried over from an earlier (resumed) attempt
            for c in stored:
                if (c["runtime"], c["precision"], c["status"]) == (rt_name, precision, "oom"):
                    oom_at[c["size"]] = min(c["batch"], oom_at.get(c["size"], c["batch"]))
            self._run_group(rt_name, precision, cells, oom_at)

    def _record(self, cell: Cell, out: Outcome) -> None:
        self.store.add_cell(self.run_id, cell, out.status, out.reason, out.samples, **out.parts)
        self.progress(cell, out.status)

    def _start(self, rt_name: str, precision: str) -> Worker:
        return Worker(self.sweep, rt_name, precision, self.workdir, self.cell_timeout)

    def _run_group(self, rt_name: str, precision: str, cells: list[Cell], oom_at: dict[int, int]) -> None:
        worker: Worker | None = None
        try:
            for i, c in enumerate(cells):
                if why := skip_reason(oom_at, c):
                    self._record(c, Outcome("skipped", why))
                    continue
                fresh = worker is None
                if fresh:
                    try:
                        worker = self._start(rt_name, precision)
                    except WorkerLost as e:  # setup crashed or hung: a new worker would do the same
                        for rest in cells[i:]:
                            self._record(rest, Outcome(e.status, e.reason))
                        return
                    if worker.group_outcome is not None:  # unavailable, unsupported, or setup failed
                        for rest in cells[i:]:
                            self._record(rest, worker.group_outcome)
                        return
                t0 = time.perf_counter()
                try:
                    out = worker.measure(c, self.cell_timeout)
                except WorkerLost as e:
                    out = Outcome(e.status, e.reason)
                info = out.parts.setdefault("info", {})
                info["worker_pid"] = worker.pid
                info["cell_wall_s"] = time.perf_counter() - t0  # as the parent saw it: everything for this cell
                if fresh:  # process start + imports: not part of any timing, kept for the record
                    info["worker_start_s"] = worker.start_s
                if out.status in ("failed", "timeout") and not worker.proc.is_alive():
                    worker.close()
                    worker = None
                if out.status == "oom":
                    oom_at[c.size] = min(c.batch, oom_at.get(c.size, c.batch))
                self._record(c, out)
        finally:
            if worker is not None:
                worker.close()
