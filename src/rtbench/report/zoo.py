"""A zoo's report (``<out>/<zoo-id>/zoo.md`` and ``zoo.html``), from the store alone.

First the model-level summary (for each model and GPU type: the fastest runtime and precision at each size and
batch, with its interval, and whether it is ahead of the next beyond both intervals), then the hardware
comparison when several GPU types measured, the interference check, and each model's own table (the seed table
of its run, with a link to its full report). Every figure compares cells of one run, so of one GPU: a zoo never
compares a speedup or a verdict across GPUs, and the hardware table puts figures side by side without either.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from rtbench import stats, zoo_store
from rtbench.errors import UserError
from rtbench.report.blocks import Bullets, Heading, Para, Table
from rtbench.report.table import _ms, fmt
from rtbench.status import MEASURED

FILES = {"md": "zoo.md", "html": "zoo.html"}


def load_runs(zoo: dict, out: Path) -> list[tuple[dict, object, pd.DataFrame]]:
    """(zoo run record, Run, its DataFrame) for every run of the zoo, in the order they started."""
    from rtbench.results import Run

    got = []
    for rec in zoo["runs"]:
        run = Run.load(rec["run_id"], out)
        got.append((rec, run, run.to_pandas()))
    return got


def _gpu(run, df) -> str:
    """Which GPU (or CPUs) measured the run's cells: the lane's record, else the fingerprint's."""
    lane = run.env.get("lane") or {}
    if "gpu" in lane:
        where = f"GPU {lane['gpu_index']}" if "gpu_index" in lane else lane.get("host") or lane.get("node", "")
        return f"{lane['gpu']} ({where}, {lane.get('gpu_uuid') or 'no uuid'})"
    return lane.get("name") or str(run.env.get("gpu") or run.env.get("cpu") or run.sweep.device)


def _interval(r) -> tuple[float, float]:
    return float(r["ci_low_ms"]), float(r["ci_high_ms"])


def fastest_rows(df: pd.DataFrame) -> list[tuple]:
    """(size, batch, best row, next row or None) per size and batch: the fastest ``ok`` cell (a mismatch never wins)."""
    ok = df[df["status"] == "ok"]
    out = []
    for (size, batch), g in ok.groupby(["size", "batch"], sort=True):
        g = g.sort_values("ms")
        best = g.iloc[0].to_dict()
        nxt = g.iloc[1].to_dict() if len(g) > 1 else None
        out.append((size, batch, best, nxt))
    return out


def ahead(best: dict, nxt: dict | None) -> str:
    """Whether the fastest cell is ahead of the next beyond both intervals."""
    if nxt is None:
        return "only measured cell"
    if not all(math.isfinite(v) for v in (*_interval(best), *_interval(nxt))):
        return f"no interval to compare with {nxt['runtime']} {nxt['precision']}"
    if best["ci_high_ms"] < nxt["ci_low_ms"]:
        return f"ahead of {nxt['runtime']} {nxt['precision']} ({nxt['ms'] / best['ms']:.2f}x)"
    return f"tie with {nxt['runtime']} {nxt['precision']} (intervals overlap)"


def summary_table(runs) -> Table:
    head = ["model", "measured on", "size", "batch", "fastest", "ms (95% CI)", "FPS", "vs next"]
    rows = []
    for rec, run, df in runs:
        if rec["role"] != "sweep":
            continue
        best = fastest_rows(df) if len(df) else []
        if not best:
            why = _why_none(df)
            rows.append([rec["model"], rec["accelerator"], "–", "–", "none", why, "–", "–"])
        for size, batch, b, nxt in best:
            rows.append([rec["model"], rec["accelerator"], f"{size}x{size}", str(batch),
                         f"{b['runtime']} {b['precision']}", _ms(b), fmt(b.get("fps"), 1), ahead(b, nxt)])
    return Table(head, rows)


def _why_none(df) -> str:
    if not len(df):
        return "no cells"
    status, reason = df.groupby(["status", "reason"], dropna=False).size().idxmax()
    return f"{status}: {reason}" if isinstance(reason, str) else str(status)


def hardware_table(runs) -> Table | None:
    """Per model, size and batch: each GPU type's fastest ok cell (ms, FPS, images per joule), side by side."""
    sweeps = [(rec, df) for rec, _run, df in runs if rec["role"] == "sweep"]
    accs = list(dict.fromkeys(rec["accelerator"] for rec, _ in sweeps))
    if len(accs) < 2:
        return None
    best: dict[tuple, dict] = {}
    for rec, df in sweeps:
        for size, batch, b, _n in fastest_rows(df) if len(df) else []:
            best[(rec["model"], size, batch, rec["accelerator"])] = b
    head = ["model", "size", "batch"] + [f"{a}: {k}" for a in accs for k in ("fastest", "ms (95% CI)", "FPS", "img/J")]
    rows = []
    for model, size, batch in dict.fromkeys(k[:3] for k in best):
        row = [model, f"{size}x{size}", str(batch)]
        for a in accs:
            b = best.get((model, size, batch, a))
            row += ([f"{b['runtime']} {b['precision']}", _ms(b), fmt(b.get("fps"), 1), fmt(b.get("images_per_joule"), 1)]
                    if b else ["–"] * 4)
        rows.append(row)
    return Table(head, rows)


def interference(zoo: dict, runs) -> tuple[list, list[str]]:
    """The interference check's blocks and its warnings (empty when the zoo has no check)."""
    by_role = {rec["role"]: (rec, df) for rec, _run, df in runs}  # the latest run of each role
    if "interference-alone" not in by_role or "interference-busy" not in by_role:
        return [], []
    (ra, alone), (rb, busy) = by_role["interference-alone"], by_role["interference-busy"]
    if not (len(alone) and len(busy)) or not (alone["status"].iloc[0] in MEASURED and busy["status"].iloc[0] in MEASURED):
        return [Para("The interference check's reference cell was not measured in both runs.")], []
    a, b = alone.iloc[0].to_dict(), busy.iloc[0].to_dict()
    diff = b["ms"] - a["ms"]
    allowed = stats.allowed_difference((a["ci_low_ms"], a["ci_high_ms"]), (b["ci_low_ms"], b["ci_high_ms"]))
    window = next((w for w in reversed(zoo["result"].get("interference", [])) if w["run_id"] == rb["run_id"]), {})
    share = window.get("neighbours_busy", {})
    cell = f"{a['runtime']} {a['precision']} {a['size']}px b{a['batch']} of {rb['model']} on {ra['lane']}"
    blocks = [Para(f"Reference cell: {cell}. Alone (neighbours idle): run `{ra['run_id']}`; with the neighbours "
                   f"busy: run `{rb['run_id']}`. The difference is judged against √(h_alone² + h_busy²) of the two "
                   "95% CI half-widths."),
              Table(["measured", "ms (95% CI)", "FPS"], [["alone", _ms(a), fmt(a.get("fps"), 1)],
                                                         ["neighbours busy", _ms(b), fmt(b.get("fps"), 1)]]),
              Para(f"Busy minus alone: {diff:+.4f} ms ({100 * diff / a['ms']:+.1f}%), allowed by the intervals "
                   f"±{allowed:.4f} ms. Share of the busy measurement each neighbour spent in its rounds: "
                   + (", ".join(f"{k} {100 * v:.0f}%" for k, v in share.items()) or "not recorded") + ".")]
    warn = []
    if abs(diff) > allowed:
        warn.append(f"**interference**: with its neighbours busy the reference cell ran {100 * diff / a['ms']:+.1f}% "
                    f"{'slower' if diff > 0 else 'faster'} than alone, beyond both intervals: cells measured side by "
                    "side on this host carry that much of each other's load; measure one GPU at a time "
                    "(--gpus 0) where it matters")
    if share and min(share.values()) < 0.5:
        warn.append("**interference**: a neighbour was in its rounds for less than half of the busy measurement, "
                    "so the check understates the interference")
    return blocks, warn


def build(zoo: dict, runs) -> list:
    spec, res = zoo["spec"], zoo["result"]
    lanes = res.get("lanes", [])
    blocks = [Heading(1, f"Model zoo {zoo['id']}"),
              Para(f"{len(spec['models'])} models, executor `{spec['executor']}`, {len(lanes)} lanes; status "
                   f"{zoo['status']}; wall time {res.get('wall_s', float('nan')):.1f} s; started {zoo['created']}."),
              Table(["lane", "measures on", "where"],
                    [[ln["name"], ln["accelerator"], ", ".join(f"{k} {ln[k]}" for k in
                                                                ("node", "host", "gpu_index", "gpu_uuid", "cpus")
                                                                if ln.get(k) is not None)] for ln in lanes])]
    inter, warnings = interference(zoo, runs)
    if warnings or res.get("errors"):
        blocks += [Heading(2, "Warnings"), Bullets(warnings + [f"**lane error**: {e}" for e in res.get("errors", [])])]
    blocks += [Heading(2, "Fastest runtime and precision per model"),
               Para("Per model, GPU type, size and batch: the fastest cell whose outputs matched the reference, with "
                    "its 95% CI, and whether it is ahead of the next beyond both intervals (else a tie). Each model's "
                    "cells were measured on one GPU, in one run."),
               summary_table(runs)]
    if (hw := hardware_table(runs)) is not None:
        blocks += [Heading(2, "Hardware"), Para("Each GPU type's fastest cell per model, size and batch; figures side "
                                                "by side, measured on different machines: no speedup or verdict "
                                                "across them."), hw]
    if inter:
        blocks += [Heading(2, "Interference check")] + inter
    blocks.append(Heading(2, "Models"))
    blocks += model_blocks(runs)
    return blocks


def model_blocks(runs) -> list:
    from rtbench.report.document import groups, runtimes_of
    from rtbench.report.i18n import translator
    from rtbench.report.table import seed_rows

    _ = translator("en")
    out = []
    for rec, run, df in runs:
        if rec["role"] != "sweep":
            continue
        out += [Heading(3, f"{rec['model']} on {rec['accelerator']}"),
                Para(f"Run `{run.id}` ({run.status}), measured on {_gpu(run, df)}; full report: "
                     f"`{run.id}/report.md`.")]
        for key, g in groups(df):
            out += [Para(f"{key[0]}, {key[1]}, boundary {key[2]}"), seed_rows(g, runtimes_of(run, g), _)]
        failed = df[~df["status"].isin(MEASURED)] if len(df) else df
        if len(failed):
            out.append(Bullets([f"{r['runtime']} {r['precision']} {r['size']}px b{r['batch']}: {r['status']}"
                                + (f" ({r['reason']})" if isinstance(r["reason"], str) else "")
                                for _i, r in failed.iterrows()]))
    return out


def write_zoo_report(zoo_id: str, out: str | Path, fmts=("md", "html"), model_reports: bool = False) -> Path:
    """Write ``<out>/<zoo-id>/zoo.md`` and ``zoo.html`` (and, with ``model_reports``, each run's own report, in
    parallel processes); returns the Markdown file's path."""
    from rtbench.report import write_documents

    out, fmts = Path(out), tuple(f for f in fmts if f in FILES)
    if not fmts:
        raise UserError("a zoo's report is Markdown or HTML: use --format md,html (each run's report takes csv, json)")
    zoo = zoo_store.load(out, zoo_id)
    if zoo is None:
        raise UserError(f"no zoo {zoo_id!r} in {out}: pass the --out folder the zoo was written to")
    if model_reports:
        procs = [subprocess.Popen([sys.executable, "-m", "rtbench", "report", r["run_id"], "--out", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in zoo["runs"]]
        for p in procs:
            p.communicate()
    d = out / zoo_id
    d.mkdir(parents=True, exist_ok=True)
    return write_documents(build(zoo, load_runs(zoo, out)), d, fmts, "en", FILES)[0]
