"""``rtbench load``: latency under a Poisson load at several offered rates, with dynamic batching, per runtime, and
the highest rate whose p99 meets an SLO.

For each runtime group (runtime, precision) one worker process prepares a session per batch bucket (the cells of
the run, parity-checked and warmed up as in ``rtbench run``) and measures each closed loop in a few rounds: the
capacity that ``--qps auto`` scales (10% to 120% of max-batch / its wall time per call). Then, per batching
policy, it serves one load point per offered rate (rtbench.loadgen, in the worker), and with an SLO a binary
search between the highest rate that passed and the lowest above it that did not. Every point is stored the
moment it exists, with every request's latency, in the run's store (``load_points``); the run row and the bucket
cells are those of any run. Groups run one after another, so no two runtimes share the device at once.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from rtbench import loadstats
from rtbench.errors import UserError
from rtbench.loadgen import Batching, Trace
from rtbench.loadspec import (DEFAULT_DURATION_S, MIN_DURATION_S, SEARCH_STEPS, SEARCH_TOLERANCE,
                              LoadSpec, check_fits, make_spec)
from rtbench.spec import Cell, Sweep
from rtbench.store import Store, dumps, now

# ---- the store ------------------------------------------------------------------------------------------
ARRAYS = {"arrival_s": "<f8", "latency_ms": "<f4", "queue_ms": "<f4", "batch": "<u2"}


def add_point(store: Store, run_id: str, cell, batching: Batching, rate: float, kind: str, seed: int, status: str,
              reason: str | None, st: dict, info: dict, trace: Trace | None) -> None:
    """Store one load point (``kind``: sweep or search) with every request's arrival, latency, queueing and batch."""
    arrays = dict.fromkeys(ARRAYS)
    if trace is not None:
        arrays = {"arrival_s": trace.arrival_s, "latency_ms": (trace.done_s - trace.arrival_s) * 1e3,
                  "queue_ms": (trace.dispatch_s - trace.arrival_s) * 1e3, "batch": trace.batch}
        arrays = {k: np.asarray(v).astype(ARRAYS[k]).tobytes() for k, v in arrays.items()}
    with store.db:
        store.db.execute("BEGIN IMMEDIATE")
        store.db.execute(
            "INSERT INTO load_points (run_id, runtime, precision, size, max_batch, max_delay_ms, offered_qps, kind, "
            "seed, status, reason, stats, info, created, arrival_s, latency_ms, queue_ms, batch) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, cell.runtime, cell.precision, cell.size, batching.max_batch, batching.max_delay_ms, rate, kind,
             seed, status, reason, dumps(st), dumps(info), now(), *arrays.values()))


def read_points(out: Path | str, run_id: str) -> list[dict]:
    """Every load point of a run, in the order measured, with its arrays (empty for a point that failed)."""
    store = Store(out, create=False)
    try:
        cur = store.db.execute("SELECT * FROM load_points WHERE run_id=? ORDER BY id", (run_id,))
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        store.close()
    for r in rows:
        r["stats"], r["info"] = json.loads(r["stats"] or "{}"), json.loads(r["info"] or "{}")
        for k, dtype in ARRAYS.items():
            r[k] = np.frombuffer(r[k], dtype=dtype).astype(float) if r[k] else np.empty(0)
    return rows


# ---- the run --------------------------------------------------------------------------------------------
class LoadRun:
    """Measures a load test into the store: per runtime group, its bucket cells, then its load points.

    A bucket cell goes through the engine's own steps for a cell (``Engine.prepare_one``: prepare and store it;
    ``_measure`` and ``_on_block``: one block, stored; ``_on_stop``: its statistics, stored), in its group's
    worker (``engine.Group``: started on demand, replaced when it dies), so it is stored as a cell of any run is.
    """

    def __init__(self, sweep: Sweep, spec: LoadSpec, out: Path, cell_timeout: float,
                 progress: Callable[[dict], None] | None = None):
        self.sweep, self.spec, self.out, self.cell_timeout = sweep, spec, Path(out), cell_timeout
        self.progress = progress or (lambda row: None)

    def run(self) -> str:
        from rtbench import engine
        from rtbench.child import start_fork_server, wait_for_fork_server
        from rtbench.env import fingerprint
        from rtbench.store import new_run_id

        start_fork_server()
        store, run_id = Store(self.out), new_run_id()
        if not self.sweep.device.startswith("cuda"):
            wait_for_fork_server()
        store.create_run(run_id, self.sweep.to_dict(), fingerprint(self.sweep.device), engine.harness_cost(), {})
        store.set_schedule(run_id, {"load": self.spec.to_dict()})
        self.store, self.run_id = store, run_id
        eng = engine.Engine(self.sweep, store, run_id, self.out, {}, cell_timeout=self.cell_timeout)
        status = "interrupted"
        try:
            store.set_status(run_id, "running")
            for rt in self.sweep.runtimes:
                for precision in self.sweep.precisions:
                    self._group(eng, rt, precision)
            status = "complete"
        finally:
            store.set_status(run_id, status)
            shutil.rmtree(eng.refs_dir, ignore_errors=True)
            store.close()
        return run_id

    def _group(self, eng, rt: str, precision: str) -> None:
        """Prepare the group's buckets, measure their closed loops, serve every policy's points, finish the cells."""
        from rtbench.engine import Group
        from rtbench.status import Status
        from rtbench.worker import Outcome

        group = eng.groups[(rt, precision, 0)] = Group(eng, rt, precision)
        units = {c.batch: eng.prepare_one(group, c) for c in self.sweep.cells()
                 if (c.runtime, c.precision) == (rt, precision)}  # None: stored as failed, unavailable, ...
        live = [u for u in units.values() if u is not None]
        failures: dict[int, object] = {}
        try:
            self._closed_loop(eng, live, failures)
            for batching in self.spec.policies:
                self._policy(group, units, failures, batching)
        finally:
            for u in live:  # the cells' statistics from their closed-loop rounds (a cell without any: failed)
                u.stopped_by = u.stopped_by or "max_rounds"
                failure = failures.get(u.cell.batch)
                if failure is None and not u.ref.blocks:
                    failure = Outcome(Status.FAILED, "stopped before its closed loop was measured")
                eng._on_stop(u, failure)
            group.close()

    def _closed_loop(self, eng, units: list, failures: dict) -> None:
        """``policy.rounds`` rounds of one block per bucket: each bucket's closed-loop latency, stored as its cell's."""
        from rtbench.timing import Block, BlockSpec

        p = self.sweep.policy
        spec = BlockSpec(p.block_s, p.block_min_calls, p.rewarm_s)
        for r in range(p.rounds):
            for u in units:
                if u.cell.batch in failures:
                    continue
                got = eng._measure(u, spec)
                if isinstance(got, Block):
                    eng._on_block(u, r, got)
                else:
                    failures[u.cell.batch], u.stopped_by = got, str(got.status)

    def _policy(self, group, units: dict, failures: dict, batching: Batching) -> None:
        """The points of one batching policy: the rates asked (or auto), then the search."""
        from rtbench import stats

        cells = {b: units[b] for b in batching.buckets}
        bad = next((b for b, u in cells.items() if u is None or b in failures), None)
        if bad is not None:
            why = failures[bad].reason if bad in failures else "its cell could not be prepared (see the run's cells)"
            for rate in self.spec.qps + ((None,) if self.spec.shares else ()):
                self._store(group, batching, rate, "sweep", "failed", f"bucket {bad} could not run: {why}", {}, {}, None)
            return
        top = cells[batching.max_batch].ref.blocks
        host = np.concatenate([b.host_ms for _r, b in top])
        rounds = np.concatenate([np.full(len(b.host_ms), r) for r, b in top])
        capacity = batching.max_batch * 1e3 / stats.estimate(list(stats.round_estimates(host, rounds).values()))[0]
        passed: dict[float, bool] = {}
        for rate in self.spec.rates(capacity):
            passed[rate] = self._point(group, cells, batching, rate, "sweep", capacity)
        for _ in range(self.spec.search_steps if self.spec.slo_ms is not None else 0):
            rate = loadstats.next_rate(passed, SEARCH_TOLERANCE)
            if rate is None:
                break
            passed[rate] = self._point(group, cells, batching, rate, "search", capacity)

    def _point(self, group, cells: dict, batching: Batching, rate: float, kind: str, capacity: float) -> bool:
        """Serve one point in the group's worker and store it; whether it passes (valid, p99 bound within the SLO)."""
        from rtbench.worker import Outcome

        s = self.spec
        # the worker's "load" request (worker.GroupMeasurer.load), through the group: a dead worker is replaced
        got = group._ask("load", {b: u.cell for b, u in cells.items()}, s.point(rate, batching))
        info = {"capacity_qps": capacity, "closed_loop_host_ms": batching.max_batch * 1e3 / capacity,
                "buckets": list(batching.buckets)}
        if isinstance(got, Outcome):
            self._store(group, batching, rate, kind, str(got.status), got.reason, {}, info, None)
            return False
        st = loadstats.point_stats(got, rate, s.duration_s, s.warmup_s, s.slo_ms, s.min_duration_s)
        info.update(end_s=got.end_s, cut=got.cut)
        self._store(group, batching, rate, kind, "ok", None, st, info, got)
        return st["passes"]

    def _store(self, group, batching, rate, kind, status, reason, st, info, trace) -> None:
        w = self.sweep
        cell = Cell(w.model, group.runtime, group.precision, w.sizes[0], batching.max_batch, w.device, w.boundary)
        add_point(self.store, self.run_id, cell, batching, rate, kind, self.spec.seed, status, reason, st, info, trace)
        self.progress({"runtime": cell.runtime, "precision": cell.precision, "policy": batching.label,
                       "offered_qps": rate, "kind": kind, "status": status, "reason": reason, **st})


# ---- results --------------------------------------------------------------------------------------------
def frame(run_id: str, out: Path | str):
    """One row per load point of a run: identity, policy, rate, every statistic, whether it is its series' best
    (the highest rate that passed), and the arrays of its requests. ``attrs``: run id, spec, best rates."""
    import pandas as pd

    from rtbench.results import Run

    run = Run.load(run_id, out)
    spec = (run.schedule or {}).get("load")
    rows = []
    for p in read_points(out, run_id):
        row = {k: p[k] for k in ("runtime", "precision", "size", "max_batch", "max_delay_ms", "offered_qps", "kind",
                                 "seed", "status", "reason")}
        row.update(model=run.sweep.model, device=run.sweep.device, boundary=run.sweep.boundary)
        row.update(p["stats"])
        row.update({k: p["info"].get(k) for k in ("capacity_qps", "closed_loop_host_ms", "cut")})
        row.update({k: p[k] for k in ("arrival_s", "latency_ms", "queue_ms", "batch")})
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update(run_id=run_id, load=spec, best=[])
    if df.empty:
        return df
    df["passes"] = df.get("passes", pd.Series(False, index=df.index)).fillna(False).astype(bool)
    df["best"] = False
    for key, g in df.groupby(SERIES, sort=False):
        best = loadstats.best_rate(dict(zip(g["offered_qps"], g["passes"])))
        if best is not None:
            i = g.index[(g["offered_qps"] == best) & g["passes"]][0]
            df.loc[i, "best"] = True
            df.attrs["best"].append({**dict(zip(SERIES, key)), "qps": best, "p99_ms": df.loc[i, "p99_ms"],
                                     "es_p99_ms": df.loc[i, "es_p99_ms"]})
    return df


SERIES = ["runtime", "precision", "max_batch", "max_delay_ms"]  # the points of one search


def load_test(model: str = "resnet18", runtimes=None, precision="fp32", size: int = 224, max_batch="8",
              max_delay_ms="2", qps="auto", slo=None, duration: float = DEFAULT_DURATION_S, device: str = "auto",
              boundary: str = "compute", weights: str = "random", out: str | Path = "rtbench-results", seed: int = 0,
              search_steps: int = SEARCH_STEPS, policy=None, options: dict | None = None, report: bool = True,
              progress: Callable[[dict], None] | None = None, cell_timeout: float | None = None,
              min_duration_s: float = MIN_DURATION_S):
    """Latency under load for each runtime: a DataFrame with one row per load point (``frame``).

    ``max_batch`` and ``max_delay_ms`` take one value or several (``"8,16"``; every pair is a batching policy);
    ``qps`` a list of rates or ``"auto"``; ``slo`` a p99 bound with its unit (``"15ms"``), which turns on the
    binary search for the highest rate that meets it. The run, its bucket cells and its points go to
    ``<out>/rtbench.sqlite``; the report to ``<out>/<run-id>/load.md`` and ``load.html``.
    """
    from rtbench import api
    from rtbench.spec import DEFAULT_CELL_TIMEOUT_S, check_cell_timeout

    spec = make_spec(max_batch, max_delay_ms, qps, slo, duration, seed, search_steps, min_duration_s)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UserError(f"--size {size!r} is not a whole number of pixels, e.g. --size 224") from None
    cell_timeout = check_cell_timeout(DEFAULT_CELL_TIMEOUT_S if cell_timeout is None else cell_timeout)
    buckets = sorted({b for p in spec.policies for b in p.buckets})
    dev = api.resolve_device(device)
    sweep = api.make_sweep(model, runtimes, precision, [size], buckets, dev, boundary, weights,
                           policy or load_policy(dev), options)
    check_fits(spec, size, sweep.device)
    api._check_writable(Path(out))
    run_id = LoadRun(sweep, spec, Path(out), cell_timeout, progress).run()
    if report:
        from rtbench.report.load import write_load_report

        write_load_report(run_id, out)
    return frame(run_id, out)


def load_policy(device: str):
    """The device's default timing policy with three rounds of the buckets' closed loops (their capacity)."""
    import dataclasses

    from rtbench.api import default_policy

    return dataclasses.replace(default_policy(device), rounds=3, max_rounds=3)
