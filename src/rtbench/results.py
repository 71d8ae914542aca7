"""A Run read back from the store, and its one-row-per-cell DataFrame with every statistic."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from rtbench import stats
from rtbench.hardware import peak_flops
from rtbench.spec import Sweep
from rtbench.store import Store
from rtbench.telemetry import mean_of

BASELINE = "torch"
KEY = ["precision", "device", "boundary", "size", "batch"]


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
    cells: list[dict]
    out_dir: Path
    phases: dict = field(default_factory=dict)  # wall-clock seconds per phase of the run

    @classmethod
    def load(cls, run_id: str, out_dir: Path | str = "rtbench-results") -> "Run":
        store = Store(out_dir, create=False)
        try:
            r = store.run(run_id)
            cells = store.cells(run_id)
        finally:
            store.close()
        return cls(r["id"], r["status"], r["created"], Sweep.from_dict(r["sweep"]), r["env"], r["harness"],
                   r["peak"], cells, Path(out_dir), r.get("phases") or {})

    @property
    def report_dir(self) -> Path:
        return self.out_dir / self.id

    def to_pandas(self):
        """One row per cell: identity, status, every statistic, throughput, utilisation, speedup, parity."""
        import pandas as pd

        rows = [self._row(c) for c in self.cells]
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        self._add_speedups(df)
        return df

    def time_breakdown(self) -> dict:
        """Where the run's wall time went, in seconds: ``setup`` (export, sessions, compile, first calls),
        ``measure`` (warm-up and timed loops), ``checks`` (parity and statistics per cell), and the run's
        fixed work (``imports``, ``harness``, ``peaks``, ``fingerprint``, ``workers``: worker processes, runtime
        imports and contexts, ``report``, ``other``: the store and the rest; ``fixed`` sums them). Empty for a run
        stored without them."""
        p = self.phases
        if "cells_s" not in p:
            return {}
        setup = measure = checks = 0.0
        for c in self.cells:
            setup += _setup_s(c) + c["setup"].get("first_call_ms", 0) / 1e3
            measure += c["stats"].get("warmup_s", 0.0) + c["stats"].get("timed_s", 0.0)
            checks += c["info"].get("parity_s", 0.0) + c["info"].get("stats_s", 0.0)
        out = {"total": p.get("wall_s", 0.0), "setup": setup, "measure": measure, "checks": checks,
               "workers": max(0.0, p["cells_s"] - setup - measure - checks) + p.get("fork_server_s", 0.0)}
        for k in ("prepare", "imports", "harness", "peaks", "fingerprint", "report"):
            out[k] = p.get(f"{k}_s", 0.0)
        out["other"] = max(0.0, out["total"] - sum(v for k, v in p.items() if k != "wall_s"))
        out["without_setup"] = out["total"] - setup
        out["fixed"] = out["without_setup"] - measure - checks  # everything but set-up, loops and checks
        return out

    def _row(self, c: dict) -> dict:
        st = dict(c["stats"])
        host = st.pop("host", {})
        row = {k: c[k] for k in ("model", "runtime", "precision", "size", "batch", "device", "boundary", "status",
                                 "reason")}
        row.update({k: v for k, v in st.items()})
        row["host_trimmed_mean_ms"] = host.get("trimmed_mean_ms")
        tm = st.get("trimmed_mean_ms")
        if tm:
            row["fps"] = stats.throughput(tm, c["batch"])
            row["fps_low"] = stats.throughput(st["ci_high_ms"], c["batch"])
            row["fps_high"] = stats.throughput(st["ci_low_ms"], c["batch"])
            row["ms_per_image"] = tm / c["batch"]
            flops = st.get("flops_per_image")
            if flops:
                achieved = flops * c["batch"] / (tm / 1e3)
                row["achieved_flops"] = achieved
                sheet, meas = peak_flops(self.peak, _ran_precision(c))
                row["load_datasheet_pct"] = 100 * achieved / sheet if sheet else math.nan
                row["load_measured_pct"] = 100 * achieved / meas if meas else math.nan
        par = c["parity"]
        for k in ("max_abs", "max_rel", "top1_agree", "reference"):
            row[f"parity_{k}"] = par.get(k)
        row["setup_s"] = _setup_s(c)
        row["first_call_ms"] = c["setup"].get("first_call_ms")
        row["threads"] = c["info"].get("threads")
        row["samples_ms"] = c.get("samples_ms")
        row.update(_telemetry_columns(c.get("telemetry") or {}))
        return row

    def _add_speedups(self, df) -> None:
        """Speedup vs torch eager in the same precision, device, boundary, size and batch, with a bootstrap CI."""
        df["speedup"] = df["speedup_low"] = df["speedup_high"] = math.nan
        base = {tuple(r[k] for k in KEY): r["samples_ms"] for _, r in df.iterrows()
                if r["runtime"] == BASELINE and r["status"] in ("ok", "mismatch")}
        for i, r in df.iterrows():
            b = base.get(tuple(r[k] for k in KEY))
            if b is None or r["status"] not in ("ok", "mismatch") or r["samples_ms"] is None or not len(r["samples_ms"]):
                continue
            if r["runtime"] == BASELINE:
                df.loc[i, ["speedup", "speedup_low", "speedup_high"]] = 1.0
                continue
            s = stats.speedup(b, r["samples_ms"])
            df.loc[i, ["speedup", "speedup_low", "speedup_high"]] = s["speedup"], s["speedup_low"], s["speedup_high"]


def _setup_s(c: dict) -> float:
    """A cell's set-up seconds (export, session, compile, ...; the first call is kept in ms apart)."""
    return sum(v for k, v in c["setup"].items() if k.endswith("_s"))


def _telemetry_columns(tele: dict) -> dict:
    """GPU telemetry of one cell (telemetry.py): means over the timed loop and energy per image; NaN if absent."""
    cols = {k: mean_of(tele, k) for k in ("power_w", "sm_clock_mhz", "temp_c", "gpu_util_pct")}
    for k in ("joules_per_image", "images_per_joule"):
        cols[k] = float(tele[k]) if tele.get(k) is not None else math.nan
    return cols


def _ran_precision(c: dict) -> str:
    """The precision that really ran: fp32 with TF32 on counts as tf32 for the peak."""
    return "tf32" if c["precision"] == "fp32" and c["info"].get("tf32") else c["precision"]


def list_runs(out_dir: Path | str) -> list[dict]:
    store = Store(out_dir, create=False)
    try:
        return store.runs()
    finally:
        store.close()
