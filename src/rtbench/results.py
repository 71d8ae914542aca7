"""A Run read back from the store: typed cell results, and a one-row-per-cell DataFrame with every statistic."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtbench import stats
from rtbench.hardware import peak_flops
from rtbench.spec import Cell, Sweep
from rtbench.status import Status
from rtbench.store import Store
from rtbench.telemetry import mean_of

BASELINE = "torch"
KEY = ["precision", "device", "boundary", "size", "batch"]


@dataclass(frozen=True)
class CellResult:
    """One stored cell: what was measured (``cell``), what became of it, and every sample with its round."""

    id: int
    cell: Cell
    status: Status
    reason: str | None
    stats: dict
    setup: dict
    parity: dict
    info: dict
    telemetry: dict
    samples_ms: np.ndarray = field(default_factory=lambda: np.empty(0))  # primary clock, in round order
    host_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    launch_ms: np.ndarray = field(default_factory=lambda: np.empty(0))  # CUDA cells: host time to enqueue
    rounds: np.ndarray = field(default_factory=lambda: np.empty(0, int))  # the round of each sample

    @classmethod
    def from_row(cls, d: dict) -> "CellResult":
        cell = Cell(d["model"], d["runtime"], d["precision"], d["size"], d["batch"], d["device"], d["boundary"])
        arrays = {k: d[k] for k in ("samples_ms", "host_ms", "launch_ms", "rounds") if k in d}
        return cls(d["id"], cell, Status(d["status"]), d["reason"], d["stats"], d["setup"], d["parity"], d["info"],
                   d["telemetry"], **arrays)

    @property
    def measured(self) -> bool:
        return self.status.measured

    @property
    def ms(self) -> float | None:
        """The headline latency (ms): mean of the round estimates (see ``stats['statistic']``)."""
        return self.stats.get("ms")

    @property
    def label(self) -> str:
        return self.cell.label()

    @property
    def round_ms(self) -> dict[int, float]:
        """Each round's estimate (ms), in round order."""
        return {int(k): v for k, v in (self.stats.get("round_ms") or {}).items()}

    def setup_s(self) -> float:
        """Set-up seconds (export, session, compile, ...; the first call is kept in ms apart)."""
        return sum(v for k, v in self.setup.items() if k.endswith("_s"))


@dataclass
class Run:
    """One invocation: id, sweep, environment, harness cost, peaks, and its measured cells."""

    id: str
    status: str
    created: str
    sweep: Sweep
    env: dict
    harness: dict
    peak: dict
    cells: list[CellResult]
    out_dir: Path
    phases: dict = field(default_factory=dict)  # wall-clock seconds per phase of the run
    schedule: dict = field(default_factory=dict)  # how the rounds went: block length, budget, ...

    @classmethod
    def load(cls, run_id: str, out_dir: Path | str = "rtbench-results") -> "Run":
        store = Store(out_dir, create=False)
        try:
            r = store.run(run_id)
            cells = [CellResult.from_row(d) for d in store.cells(run_id)]
        finally:
            store.close()
        return cls(r["id"], r["status"], r["created"], Sweep.from_dict(r["sweep"]), r["env"], r["harness"],
                   r["peak"], cells, Path(out_dir), r.get("phases") or {}, r.get("schedule") or {})

    @property
    def report_dir(self) -> Path:
        return self.out_dir / self.id

    def to_pandas(self):
        """One row per cell: identity, status, every statistic, throughput, utilisation, speedup, parity."""
        import pandas as pd

        df = pd.DataFrame([self._row(c) for c in self.cells])
        if not df.empty:
            self._add_speedups(df)
        return df

    def time_breakdown(self) -> dict:
        """Where the run's wall time went, in seconds.

        Measured parts: ``setup`` (export, sessions, compile, first calls), ``measure`` (warm-ups and blocks,
        re-warm included), ``checks`` (parity), ``workers`` (worker processes' start and imports, the fork
        server), ``prepare``, ``imports``, ``harness``, ``peaks``, ``fingerprint``, ``report``.
        ``unaccounted`` is what is left of ``total`` (messages between processes, the store, scheduling): a
        remainder, not a measurement. ``overlap`` is how far the parts exceed ``total`` when they ran at the same
        time (on a GPU the runtime groups prepare at once, so their set-ups overlap); at most one of the two is
        non-zero, and the parts + ``unaccounted`` − ``overlap`` = ``total``. ``fixed`` is everything but set-up, measurement and checks. Empty for a
        run stored without phases.
        """
        p = self.phases
        if "cells_s" not in p:
            return {}
        out = {"total": p.get("wall_s", 0.0)}
        out["setup"] = sum(c.setup_s() + c.setup.get("first_call_ms", 0) / 1e3 for c in self.cells)
        out["measure"] = sum(c.stats.get("warmup_s", 0.0) + c.stats.get("timed_s", 0.0) for c in self.cells)
        out["checks"] = sum(c.info.get("parity_s", 0.0) for c in self.cells)
        out["workers"] = sum(c.info.get("worker_start_s", 0.0) for c in self.cells) + p.get("fork_server_s", 0.0)
        for k in ("prepare", "imports", "harness", "peaks", "fingerprint", "report"):
            out[k] = p.get(f"{k}_s", 0.0)
        rest = out["total"] - sum(v for k, v in out.items() if k != "total")
        out["unaccounted"], out["overlap"] = max(rest, 0.0), max(-rest, 0.0)
        out["without_setup"] = out["total"] - out["setup"]
        out["fixed"] = out["without_setup"] - out["measure"] - out["checks"]
        return out

    def _row(self, c: CellResult) -> dict:
        st = dict(c.stats)
        host, launch = st.pop("host", {}), st.pop("launch", {})
        st.pop("round_ms", None)
        row = {"model": c.cell.model, "runtime": c.cell.runtime, "precision": c.cell.precision, "size": c.cell.size,
               "batch": c.cell.batch, "device": c.cell.device, "boundary": c.cell.boundary, "status": c.status.value,
               "reason": c.reason}
        row.update(st)
        row["host_latency_ms"] = host.get("ms", host.get("trimmed_mean_ms"))  # wall time with sync
        row["launch_ratio"] = launch.get("ratio", math.nan)
        ms = st.get("ms")
        if ms and c.measured:
            b = c.cell.batch
            row["fps"] = stats.throughput(ms, b)
            row["fps_low"] = stats.throughput(st["ci_high_ms"], b)
            row["fps_high"] = stats.throughput(st["ci_low_ms"], b)
            row["ms_per_image"] = ms / b
            if flops := st.get("flops_per_image"):
                achieved = flops * b / (ms / 1e3)
                row["achieved_flops"] = achieved
                sheet, meas = peak_flops(self.peak, ran_precision(c.cell.precision, c.info))
                row["load_datasheet_pct"] = 100 * achieved / sheet if sheet else math.nan
                row["load_measured_pct"] = 100 * achieved / meas if meas else math.nan
        for k in ("verdict", "max_abs", "max_rel", "top1_agree", "reference"):
            row[f"parity_{k}"] = c.parity.get(k)
        row["setup_s"] = c.setup_s()
        row["first_call_ms"] = c.setup.get("first_call_ms")
        row["threads"] = c.info.get("threads")
        row["samples_ms"] = c.samples_ms
        row["rounds_of_samples"] = c.rounds
        row["round_ms"] = c.round_ms
        row.update(_telemetry_columns(c.telemetry or {}))
        return row

    def _add_speedups(self, df) -> None:
        """Speedup vs torch eager in the same precision, device, boundary, size and batch, with its 95% CI:
        paired by round when both cells have rounds, else from independent rounds or, for schema-1 runs, an
        i.i.d. bootstrap."""
        cols = ["speedup", "speedup_low", "speedup_high"]
        for col in cols:
            df[col] = math.nan
        df["speedup_method"] = None
        measured = df["status"].isin([s.value for s in Status if s.measured])
        base = {tuple(r[k] for k in KEY): r for _, r in df[measured & (df["runtime"] == BASELINE)].iterrows()}
        for i, r in df[measured].iterrows():
            b = base.get(tuple(r[k] for k in KEY))
            if b is None:
                continue
            if r["runtime"] == BASELINE:
                df.loc[i, cols] = 1.0
                df.loc[i, "speedup_method"] = "baseline"
                continue
            s = _speedup(b, r)
            if s is not None:
                df.loc[i, cols] = s["speedup"], s["speedup_low"], s["speedup_high"]
                df.loc[i, "speedup_method"] = s["speedup_method"]


def _speedup(base, cand) -> dict | None:
    if len(base["round_ms"]) > 1 and len(cand["round_ms"]) > 1:
        return (stats.paired_speedup(base["round_ms"], cand["round_ms"])
                or stats.unpaired_speedup(base["round_ms"], cand["round_ms"]))
    if len(base["samples_ms"]) and len(cand["samples_ms"]):
        return stats.iid_speedup(base["samples_ms"], cand["samples_ms"])
    return None


def _telemetry_columns(tele: dict) -> dict:
    """GPU telemetry of one cell (telemetry.py): means over the blocks and energy per image; NaN if absent."""
    cols = {k: mean_of(tele, k) for k in ("power_w", "sm_clock_mhz", "temp_c", "gpu_util_pct")}
    for k in ("joules_per_image", "images_per_joule"):
        cols[k] = float(tele[k]) if tele.get(k) is not None else math.nan
    return cols


def ran_precision(precision: str, info: dict) -> str:
    """The precision that really ran: fp32 with TF32 on counts as tf32 for the peak."""
    return "tf32" if precision == "fp32" and info.get("tf32") else precision


def list_runs(out_dir: Path | str) -> list[dict]:
    store = Store(out_dir, create=False)
    try:
        return store.runs()
    finally:
        store.close()
