"""Runs a Sweep: worker processes, preparation, interleaved rounds (rtbench.rounds), timeouts, OOM rule, resume.

Failure is data: a cell that fails is stored with its status and a one-line reason and the sweep goes on.
Every runtime group (runtime, precision) is served by its own worker process (worker.py), and all of them
stay alive while the rounds run, each keeping its cells' sessions. A worker that crashes or exceeds the cell
timeout is killed; the cell it was serving is stored as ``failed`` or ``timeout`` (its rounds so far kept),
and a fresh worker prepares the group's other cells again when their next block comes. This process is the
store's only writer: each cell is stored when prepared and each block the moment it is measured, so a
killed run resumes with the rounds it has and measures only what is missing.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rtbench import stats
from rtbench.precompile import Precompiler, setup_record
from rtbench.rounds import Schedule, Unit
from rtbench.runtimes import base
from rtbench.spec import DEFAULT_CELL_TIMEOUT_S, ROUNDS_SHARE, Cell, Sweep, check_cell_timeout
from rtbench.status import Status
from rtbench.store import Store
from rtbench.timing import Block, BlockSpec, HostClock, measure_once
from rtbench.worker import Outcome, Worker, WorkerLost, is_oom, one_line  # noqa: F401  (re-exported)

LAUNCH_BOUND = 0.85  # median launch time over median GPU time above which the GPU waited for the host
SHARDS = 4  # on a GPU, a runtime group prepares its sizes in up to this many workers at once


HARNESS = {"seconds": 0.2, "min_calls": 20_000, "warmup_s": 0.02}  # one block of null calls


def harness_cost() -> dict:
    """The timing loop's own cost per timed call, measured with the null runtime."""
    sess = base.get("null")(None, Sweep(runtimes=("null",)), "fp32", Path(".")).session(None, None)
    t0 = time.perf_counter()
    x = measure_once(sess.call, HostClock(), **HARNESS)
    wall = time.perf_counter() - t0 - HARNESS["warmup_s"]
    return {"per_call_ns": float(stats.trimmed_mean(x)) * 1e6, "median_ns": float(np.median(x)) * 1e6,
            "calls": int(len(x)), "loop_wall_ns": wall / len(x) * 1e9}


def launch_bound(ratio: float, info: dict) -> bool | None:
    """Whether the GPU waited for the host: the host's launch time is at least LAUNCH_BOUND of the GPU time. None
    (not judged) for a call that waits for the GPU before returning: its launch time is the GPU time."""
    return None if info.get("call_waits_for_gpu") else ratio >= LAUNCH_BOUND


def parity_status(par: dict) -> tuple[Status, str | None]:
    """``mismatch`` (with the reason) only when the outputs failed the check; an inconclusive check leaves the
    cell ``ok`` and is reported as a fairness warning (the timings are valid, the check could not judge)."""
    verdict = par.get("verdict", "ok" if par.get("ok", True) else "mismatch")
    return (Status.MISMATCH, par.get("reason")) if verdict == "mismatch" else (Status.OK, None)


def shard_count(sweep: Sweep, runtime: str, spare_cores: bool) -> int:
    """How many workers prepare (and then measure) a runtime group's cells: one, except on a GPU when this host's
    cores are the run's own (``spare_cores``): one per size, up to SHARDS and a third of the cores beyond two.
    A cell's set-up (a compile or a cache hit, an ONNX Runtime session with its exhaustive cuDNN search, eager
    torch's cuDNN autotuning at a new shape, parity, warm-up) is mostly CPU work while the GPU waits: in one worker
    per group the H200 seed grid's 16 torch.compile cells took 24 s of a warm run, and its eager torch and ONNX
    Runtime cells, 1.3 s each one after another, were the last ready (benchmarks/results/h200-2026-12-02b/NOTES.md).
    Spread over several workers they prepare side by side; the rounds time one block at a time whichever worker
    holds the cell. (Spread before models were built on one thread, the eager groups' workers fought over the
    cores building them and a warm run was ready no sooner: h200-2026-12-02/NOTES.md.)"""
    if not (spare_cores and sweep.device.startswith("cuda")):
        return 1
    return max(1, min(SHARDS, len(sweep.sizes), ((os.cpu_count() or 1) - 2) // 3))


def skip_reason(oom_at: dict[int, int], cell: Cell) -> str | None:
    """The OOM rule: once a batch ran out of memory at a size, larger batches of that size are skipped."""
    if cell.size in oom_at and cell.batch > oom_at[cell.size]:
        return f"skipped (oom at batch {oom_at[cell.size]})"
    return None


class Group:
    """One runtime group's worker process, started on demand and replaced when it dies.

    ``prepare`` sets a cell up in the current worker; ``block`` measures one block, first preparing the cell
    again in a fresh worker when the one that had it died.
    """

    def __init__(self, engine: "Engine", runtime: str, precision: str):
        self.engine, self.runtime, self.precision = engine, runtime, precision
        self.worker: Worker | None = None
        self.prepared: set[tuple] = set()
        self.failure: Outcome | None = None  # the group cannot run at all (unavailable, setup failed, ...)
        self.started = 0  # workers started so far
        self.asked: Worker | None = None  # the worker of the last request
        self.lost = False  # the last request lost its worker (crash, timeout, a lost node)
        self.retried: dict[tuple, list[str]] = {}  # cell -> why its worker was lost, for each retry
    def _worker(self) -> Worker | Outcome:
        if self.failure is not None:
            return self.failure
        if self.worker is None or not self.worker.proc.is_alive():
            self.close()
            e = self.engine
            try:
                self.worker = e.new_worker(e.sweep, self.runtime, self.precision, e.workdir, e.cell_timeout, e.refs_dir,
                                           **e.worker_options(self.runtime))
            except WorkerLost as lost:  # set-up crashed or hung: a new worker would do the same
                self.failure = Outcome(lost.status, lost.reason)
                return self.failure
            self.started += 1
            if self.worker.group_outcome is not None:  # unavailable, unsupported, or set-up failed
                self.failure = self.worker.group_outcome
                return self.failure
        return self.worker

    def _ask(self, what: str, *args):
        w = self._worker()
        if isinstance(w, Outcome):
            return w
        self.asked, self.lost = w, False
        try:
            return w.request(what, *args, timeout=self.engine.cell_timeout)
        except WorkerLost as lost:
            self.close()
            self.lost = True
            return Outcome(lost.status, lost.reason)

    def prepare(self, cell: Cell) -> Outcome:
        fresh, self.asked = self.worker is None, None
        began = time.perf_counter()
        out = self._ask("prepare", cell)
        if out.status is Status.MEASURING:
            self.prepared.add(cell.key)
        if self.asked is not None:  # the worker that answered (or died trying)
            info = out.parts.setdefault("info", {})
            info["worker_pid"] = self.asked.pid
            # the set-up's timeline: when this cell's preparation was asked for (seconds after the engine started)
            # and how long it took, a fresh worker's start and set-up included
            info["prepare_began_s"] = began - self.engine.started
            info["prepare_wall_s"] = time.perf_counter() - began
            if fresh:  # process start + imports, then the group's set-up: not part of any timing, kept for the record
                info["worker_start_s"] = self.asked.start_s
                info["worker_setup_s"] = self.asked.setup_s
                info["worker_setup_parts"] = self.asked.setup_parts
            if placement := getattr(self.asked, "placement", None):  # its host and GPU
                info["placement"] = placement
        return out

    def block(self, cell: Cell, spec: BlockSpec) -> Block | Outcome:
        """One block; when the worker is lost on the way (not timed out), the cell is tried again in a fresh worker,
        up to the engine's ``max_retries`` times (0 for local workers: a crash there is the runtime's own)."""
        while True:
            if cell.key not in self.prepared:  # its worker died since: prepare it again in a fresh one
                got = self.prepare(cell)
                got = self._ask("block", cell, spec) if got.status is Status.MEASURING else got
            else:
                got = self._ask("block", cell, spec)
            tried = self.retried.setdefault(cell.key, [])
            if not self.lost or got.status is Status.TIMEOUT or len(tried) >= self.engine.max_retries:
                return got  # a cell that outran the timeout would only do it again
            tried.append(got.reason)

    def finish(self, cell: Cell) -> dict:
        """Close the cell's session; its telemetry ({} when the worker is gone or has none)."""
        if cell.key not in self.prepared:
            return {}
        self.prepared.discard(cell.key)
        got = self._ask("finish", cell)
        return got if isinstance(got, dict) else {}

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        self.prepared.clear()


@dataclass
class Measured:
    """What the parent keeps of a cell being measured: its store id, preparation and blocks."""

    cell_id: int
    parts: dict  # stats (warm-up), setup, parity, info from its preparation
    blocks: list[tuple[int, Block]] = field(default_factory=list)


class Engine:
    """Measures the cells of one run into the store: prepare every cell, then run the rounds."""

    def __init__(self, sweep: Sweep, store: Store, run_id: str, workdir: Path, peak: dict,
                 progress: Callable[[Cell, str], None] | None = None,
                 cell_timeout: float = DEFAULT_CELL_TIMEOUT_S, deadline: float | None = None,
                 on_round: Callable[[int, int], None] | None = None, lane=None):
        self.sweep, self.store, self.run_id, self.workdir, self.peak = sweep, store, run_id, Path(workdir), peak
        self.progress = progress or (lambda cell, status: None)
        self.on_round = on_round
        self.cell_timeout = check_cell_timeout(cell_timeout)
        self.deadline = deadline if deadline is not None else time.perf_counter() + sweep.policy.budget_s
        self.groups: dict[tuple[str, str, int], Group] = {}  # (runtime, precision, shard): group_key
        self.shards: dict[str, int] = {}  # runtime -> its number of workers, when more than one (shard_count)
        # where workers run: this host as it is, or a lane of a zoo (one GPU of the host, a Ray placement)
        self.lane = lane
        self.new_worker = lane.worker if lane is not None else Worker
        self.max_retries = lane.max_retries if lane is not None else 0
        self.schedule: Schedule | None = None
        self.precompiler: Precompiler | None = None  # run() starts one
        self.compile_threads: int | None = None  # inductor's compile processes per compiling worker (None: its own)
        self.refs_dir = self.workdir / "cache" / f"refs-{run_id}"  # reference outputs shared by the run's workers
        self.started = time.perf_counter()

    def run(self) -> dict:
        """Measure every cell not yet final in the store; returns how the rounds went (for the run's record)."""
        stored = {(c["runtime"], c["precision"], c["size"], c["batch"], c["boundary"]): c
                  for c in self.store.cells(self.run_id, with_samples=True)}
        units: list[Unit] = []
        todo = [c for c in self.sweep.cells() if c.key not in stored or not Status(stored[c.key]["status"]).final]
        # pre-compiling uses this host's spare cores and default GPU: a zoo's lanes (a GPU and a share of the cores
        # each, a Ray node) compile in their measuring workers and share the on-disk caches only
        precompiles = self.lane is None or self.lane.precompiles
        for rt in self.sweep.runtimes:
            if (n := shard_count(self.sweep, rt, precompiles)) > 1:
                self.shards[rt] = n
        compiling = sum(self.shards.get(rt, 1) for rt in self.sweep.runtimes if base.get(rt).compiles)
        self.precompiler = Precompiler(self.sweep, self.workdir, self.cell_timeout, todo if precompiles else [],
                                       self.refs_dir,
                                       measuring=compiling if precompiles and self.sweep.device.startswith("cuda") else 0)
        self.compile_threads = self.precompiler.compile_threads
        try:
            for c in self.sweep.cells():
                self.groups.setdefault(self.group_key(c), Group(self, c.runtime, c.precision))
            units = self._prepare_all(stored)
            self.precompiler.close()  # none runs while blocks are timed
            # set-up (a compile per shape, say) may take most of the budget: the rounds still get their share
            floor = time.perf_counter() + ROUNDS_SHARE * self.sweep.policy.budget_s
            extended = max(0.0, floor - self.deadline)
            self.schedule = Schedule(self.sweep.policy, units, self._measure, self._on_block, self._on_stop,
                                     self.deadline + extended, on_round=self.on_round)
            self.schedule.run()
        finally:
            self.precompiler.close()
            for g in self.groups.values():
                g.close()
            shutil.rmtree(self.refs_dir, ignore_errors=True)
        s = self.schedule
        return {"block_s": s.block_s, "shortened": s.shortened, "over_budget": s.over_budget,
                "extended_s": extended} if s else {}

    def group_key(self, cell: Cell) -> tuple[str, str, int]:
        """The group whose worker serves ``cell``: its runtime and precision, and its shard (by size, so that the OOM
        rule's batches of a size stay in one worker)."""
        n = self.shards.get(cell.runtime, 1)
        return cell.runtime, cell.precision, self.sweep.sizes.index(cell.size) % n if n > 1 else 0

    def worker_options(self, runtime: str) -> dict:
        """What a new worker is told of its neighbours: how many GPU contexts are the run's own (this process and
        one per group; telemetry counts the others as other users of the GPU), and for a runtime that compiles, its
        share of the cores for inductor's compile processes (rtbench.precompile.compile_threads)."""
        out = {"own_contexts": 1 + len(self.groups)}
        if self.compile_threads and base.get(runtime).compiles:
            out["compile_threads"] = self.compile_threads
        return out

    # preparation --------------------------------------------------------------------------------------
    def _prepare_all(self, stored: dict) -> list[Unit]:
        """Prepare every cell not yet final: each runtime group in a thread of its own that waits on its worker, and
        on a GPU all groups at once (their set-up is CPU work on otherwise idle cores: compiles, sessions; the rounds
        start only when all are done). The store is written here, in this thread, as each preparation comes back."""
        answers: queue.Queue = queue.Queue()
        errors: list[BaseException] = []

        def serve(key: tuple[str, str, int], group: Group) -> None:
            rt, precision, _shard = key
            oom_at = {s["size"]: s["batch"] for s in sorted(stored.values(), key=lambda s: -s["batch"])
                      if (s["runtime"], s["precision"], s["status"]) == (rt, precision, Status.OOM)}
            try:
                for c in (c for c in self.sweep.cells() if self.group_key(c) == key):
                    answers.put((c, stored.get(c.key), self._prepared(group, c, stored.get(c.key), oom_at)))
            except BaseException as e:  # noqa: BLE001 - raised again in the engine's thread
                errors.append(e)
            finally:
                answers.put(None)

        threads = [threading.Thread(target=serve, args=(key, g), daemon=True) for key, g in self.groups.items()]
        waves = [threads] if self.sweep.device.startswith("cuda") else [[t] for t in threads]
        order = {c.key: i for i, c in enumerate(self.sweep.cells())}
        units: list[Unit] = []
        for wave in waves:
            for t in wave:
                t.start()
            ended = 0
            while ended < len(wave):
                got = answers.get()
                if got is None:
                    ended += 1
                elif (u := self._admit(*got)) is not None:
                    units.append(u)
            for t in wave:
                t.join()
            if errors:
                raise errors[0]
        return sorted(units, key=lambda u: order[u.cell.key])

    def prepare_one(self, group: Group, cell: Cell) -> Unit | None:
        """Prepare and store one new cell outside the schedule (rtbench.loadtest); its Unit, or None when final."""
        return self._admit(cell, None, self._prepared(group, cell, None, {}))

    def _prepared(self, group: Group, cell: Cell, stored: dict | None, oom_at: dict[int, int]) -> Outcome | None:
        """Prepare one cell in its group's worker (in the group's thread); None when the cell is already final."""
        if stored is not None and Status(stored["status"]).final:
            return None
        if stored is None and (why := skip_reason(oom_at, cell)):
            return Outcome(Status.SKIPPED, why)
        ahead = setup_record(self.precompiler.claim(cell)) if self.precompiler is not None else {}
        out = group.prepare(cell)
        if ahead:
            out.parts.setdefault("setup", {}).update(ahead)
        if out.status is Status.MEASURING and self.precompiler is not None:
            self.precompiler.compiled(cell)  # compiled by its measuring worker: a later run does not compile it ahead
        if out.status is Status.OOM:
            oom_at[cell.size] = min(cell.batch, oom_at.get(cell.size, cell.batch))
        return out

    def _admit(self, cell: Cell, stored: dict | None, out: Outcome | None) -> Unit | None:
        """Store a preparation; a Unit for the rounds, or None when the cell is final (stored, skipped, failed)."""
        if out is None:
            return None
        if out.status is not Status.MEASURING:
            if stored is None:
                self._final(cell, out)
            else:  # a resumed cell that no longer prepares: its stored rounds stay
                self._finish_failed(cell, Measured(stored["id"], stored), out)
            return None
        if stored is None:
            cid = self.store.add_cell(self.run_id, cell, Status.MEASURING, None, **out.parts)
            m = Measured(cid, out.parts)
        else:  # resumed: keep the stored preparation, take the rounds it has
            m = Measured(stored["id"], {**stored, "info": {**stored["info"], **out.parts["info"], "resumed": True}})
            for r in np.unique(stored["rounds"]):
                k = stored["rounds"] == r
                m.blocks.append((int(r), Block(stored["samples_ms"][k], stored["host_ms"][k],
                                               stored["launch_ms"][k] if len(stored["launch_ms"]) else np.empty(0),
                                               0, 0.0)))
        unit = Unit(cell, out.parts["stats"]["per_call_ms"], ref=m)
        unit.estimates = {r: float(stats.trimmed_mean(b.primary_ms)) for r, b in m.blocks}
        return unit

    def _final(self, cell: Cell, out: Outcome) -> None:
        self.store.add_cell(self.run_id, cell, out.status, out.reason, **out.parts)
        self.progress(cell, str(out.status))

    # rounds -------------------------------------------------------------------------------------------
    def _measure(self, u: Unit, spec: BlockSpec) -> Block | Outcome:
        return self.groups[self.group_key(u.cell)].block(u.cell, spec)

    def _on_block(self, u: Unit, r: int, b: Block) -> None:
        self.store.add_block(u.ref.cell_id, r, b)
        u.ref.blocks.append((r, b))

    def _on_stop(self, u: Unit, failure: Outcome | None) -> None:
        group = self.groups[self.group_key(u.cell)]
        tele = group.finish(u.cell)
        if failure is not None:
            self._finish_failed(u.cell, u.ref, failure)
            return
        m = u.ref
        st = self._summary(m, u.stopped_by)
        status, reason = parity_status(m.parts.get("parity") or {})
        info = {**m.parts.get("info", {}), "worker_starts": group.started}
        if retried := group.retried.get(u.cell.key):
            info["retried"] = retried  # why its worker was lost, each time it was tried again
        self.store.update_cell(m.cell_id, status, reason, stats=st, telemetry=tele, info=info)
        self.progress(u.cell, str(status))

    def _finish_failed(self, cell: Cell, m: Measured, failure: Outcome) -> None:
        """A cell that failed during its rounds: the failure's status and reason; its rounds stay stored."""
        st = self._summary(m, str(failure.status)) if m.blocks else m.parts.get("stats", {})
        self.store.update_cell(m.cell_id, failure.status, failure.reason, stats=st)
        self.progress(cell, str(failure.status))

    def _summary(self, m: Measured, stopped_by: str) -> dict:
        """Statistics from the cell's rounds, plus its warm-up, host and launch figures and how it stopped."""
        rounds = np.concatenate([np.full(len(b.primary_ms), r) for r, b in m.blocks])
        primary = np.concatenate([b.primary_ms for _, b in m.blocks])
        host = np.concatenate([b.host_ms for _, b in m.blocks])
        warm = {k: v for k, v in (m.parts.get("stats") or {}).items()
                if k in ("warmup_calls", "warmup_s", "warmup_stable", "per_call_ms", "clock", "flops_per_image")}
        st = {**warm, **stats.summarize(primary, rounds)}
        st["host"] = {"ms": stats.estimate(list(stats.round_estimates(host, rounds).values()))[0],
                      "median_ms": float(np.median(host))}
        launch = [b.launch_ms for _, b in m.blocks if len(b.launch_ms)]
        if launch:
            ratio = float(np.median(np.concatenate(launch)) / np.median(primary)) if np.median(primary) > 0 else 0.0
            st["launch"] = {"median_ms": float(np.median(np.concatenate(launch))), "ratio": ratio}
            st["launch_bound"] = launch_bound(ratio, m.parts.get("info") or {})
        st["timed_s"] = float(sum(b.seconds for _, b in m.blocks))  # re-warm included
        st["rewarm_calls"] = int(sum(b.rewarm_calls for _, b in m.blocks))
        st["stopped_by"] = stopped_by
        st["ci_above_target"] = bool(st["ci_rel_halfwidth"] > self.sweep.policy.ci_target)
        return st
