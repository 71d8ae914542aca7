"""Do rtbench's intervals hold on a re-run? The same `rtbench run` twice, back to back, each in a fresh process.

    python benchmarks/calibration.py --out DIR [--runs 2] [-- RTBENCH RUN ARGS...]

With no arguments after ``--`` it runs the default sweep (`rtbench run`): on a GPU machine the fp32 seed grid
with every default runtime; pass e.g. ``-- --runtimes torch,onnxruntime`` to choose. For each pair of runs and
each cell measured in both it checks |m2 - m1| <= sqrt(h1^2 + h2^2) (m: estimate, h: 95% CI half-width; about
95% of cells for honest intervals) and whether m2 lies inside run 1's CI; it reports each run's wall time
(process start to exit), the median CI half-width of cells of 3 ms and more, and for every runtime other than
torch the paired speedup CI against the unpaired one and whether both runs' speedups agree within their
intervals. Writes DIR/calibration.md (date, machine, command, every figure) and keeps the store in DIR/store.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rtbench import stats  # noqa: E402
from rtbench.report.markdown import compile_text  # noqa: E402
from rtbench.results import BASELINE, Run  # noqa: E402


def run_once(store: Path, args: list[str], env: dict | None = None) -> tuple[str, float, str, float]:
    """One `rtbench run` in a fresh interpreter (``env`` added to the environment, its PYTHONPATH after src and
    before the caller's); its run id, wall seconds, last output lines and start (seconds since the epoch)."""
    env = dict(env or {})
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), env.pop("PYTHONPATH", None), os.environ.get("PYTHONPATH")]))
    t0, epoch = time.perf_counter(), time.time()
    p = subprocess.run([sys.executable, "-m", "rtbench", "run", "--out", str(store), *args], capture_output=True,
                       text=True, env={**os.environ, **env, "PYTHONPATH": path})
    wall = time.perf_counter() - t0
    m = re.search(r"run id (\S+)", p.stderr)
    if p.returncode != 0 or not m:
        raise SystemExit(f"rtbench run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return m.group(1), wall, "\n".join(p.stdout.strip().splitlines()[-3:]), epoch


def timeline(store: Path, run_id: str, epoch: float) -> str:
    """When the run's cells were prepared and its rounds ran, in seconds from process start (cells are stamped to
    the second), and the slowest worker set-up steps."""
    con = sqlite3.connect(store / "rtbench.sqlite")
    try:
        made = [datetime.fromisoformat(c).timestamp() - epoch
                for (c,) in con.execute("SELECT created FROM cells WHERE run_id=?", (run_id,))]
        first, last = con.execute("SELECT MIN(b.started), MAX(b.started + b.seconds) FROM blocks b "
                                  "JOIN cells c ON c.id = b.cell_id WHERE c.run_id=?", (run_id,)).fetchone()
        parts = [json.loads(p) for (p,) in con.execute(
            "SELECT json_extract(info, '$.worker_setup_parts') FROM cells WHERE run_id=? AND "
            "json_extract(info, '$.worker_setup_parts') IS NOT NULL", (run_id,))]
    finally:
        con.close()
    out = f"cells prepared {min(made):.0f}–{max(made):.0f} s after process start"
    if first is not None:
        out += f", rounds {first - epoch:.1f}–{last - epoch:.1f} s"
    if parts:
        out += "; slowest worker set-up steps: " + ", ".join(f"{k} {max(p.get(k, 0) for p in parts):.1f} s"
                                                           for k in ("availability_s", "model_s", "runtime_s"))
    return out


def half(c) -> float:
    return (c.stats["ci_high_ms"] - c.stats["ci_low_ms"]) / 2


def compare(a: Run, b: Run) -> dict:
    """Cell by cell agreement of two runs, and their speedups."""
    ca = {c.cell.key: c for c in a.cells if c.measured}
    rows, held, inside = [], 0, 0
    for c2 in b.cells:
        c1 = ca.get(c2.cell.key)
        if c1 is None or not c2.measured:
            continue
        ok = abs(c2.ms - c1.ms) <= math.hypot(half(c1), half(c2))
        within = c1.stats["ci_low_ms"] <= c2.ms <= c1.stats["ci_high_ms"]
        held += ok
        inside += within
        rows.append((c2.label, c1, c2, ok, within))
    big = [h for _l, c1, c2, _o, _w in rows for h in (half(c1) / c1.ms, half(c2) / c2.ms) if min(c1.ms, c2.ms) >= 3]
    return {"rows": rows, "held": held, "inside": inside, "n": len(rows),
            "median_rel_half_3ms": statistics.median(big) if big else math.nan, "n_3ms": len(big) // 2}


def speedups(runs: list[Run]) -> list[tuple]:
    """Per non-baseline cell: each run's paired and unpaired speedup CIs, and whether the runs agree."""
    out = []
    for cell in runs[0].cells:
        if cell.cell.runtime == BASELINE or not cell.measured:
            continue
        per = []
        for r in runs:
            by = {c.cell.key: c for c in r.cells}
            cand = by.get(cell.cell.key)
            base = by.get((BASELINE, *cell.cell.key[1:]))
            if cand is None or base is None or not (cand.measured and base.measured):
                break
            p = stats.paired_speedup(base.round_ms, cand.round_ms)
            u = stats.unpaired_speedup(base.round_ms, cand.round_ms)
            if p is None or u is None:
                break
            per.append((p, u))
        if len(per) == len(runs):
            (p1, u1), (p2, u2) = per[0], per[1]
            h = [(p["speedup_high"] - p["speedup_low"]) / 2 for p in (p1, p2)]
            agree = abs(p2["speedup"] - p1["speedup"]) <= math.hypot(*h)
            out.append((cell.label, per, agree))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then arguments for `rtbench run`")
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    store = a.out / "store"
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = [run_once(store, args) for _ in range(a.runs)]
    runs = [Run.load(rid, store) for rid, _w, _t, _e in done]
    first = runs[0]
    device = first.env.get("gpu") if first.sweep.device.startswith("cuda") else first.env.get("cpu")
    cmd = "rtbench run " + " ".join(args) if args else "rtbench run"

    lines = ["# Calibration: two back-to-back runs", "",
             f"- **Date:** {started}",
             f"- **Machine:** {device} ({first.sweep.device}), {platform.node()}, {platform.platform()}",
             f"- **Command:** `python benchmarks/calibration.py --out DIR --runs {a.runs}"
             + (f" -- {' '.join(args)}`" if args else "`") + f" (each run: `{cmd} --out DIR/store`)",
             f"- **Sweep:** runtimes {', '.join(first.sweep.runtimes)}; sizes {', '.join(map(str, first.sweep.sizes))}; "
             f"batches {', '.join(map(str, first.sweep.batches))}; {', '.join(first.sweep.precisions)}; budget "
             f"{first.sweep.policy.budget_s:g} s, at least {first.sweep.policy.rounds} rounds",
             f"- **Code:** rtbench {first.env.get('rtbench')} at commit {first.env.get('git_commit') or 'unknown'}"]
    for i, ((rid, wall, tail, epoch), r) in enumerate(zip(done, runs), 1):
        tb = r.time_breakdown()
        lines.append(f"- **Run {i}:** `{rid}`, {wall:.1f} s from process start to exit (inside `run()`: "
                     f"{tb.get('total', math.nan):.1f} s, set-up {tb.get('setup', math.nan):.1f} s); rounds per cell "
                     f"{min(c.stats.get('rounds', 0) for c in r.cells if c.measured)}–"
                     f"{max(c.stats.get('rounds', 0) for c in r.cells if c.measured)}; block "
                     f"{r.schedule.get('block_s', math.nan) * 1e3:.0f} ms"
                     + (f"; compilation: {comp}" if (comp := compile_text(r)) else "")
                     + f"; {timeline(store, rid, epoch)}")
    for i in range(1, len(runs)):
        c = compare(runs[i - 1], runs[i])
        lines += ["", f"## Run {i + 1} against run {i}", "",
                  f"- |m{i + 1} − m{i}| ≤ √(h{i}² + h{i + 1}²): **{c['held']} of {c['n']} cells** "
                  f"({c['held'] / max(c['n'], 1):.0%})",
                  f"- m{i + 1} inside run {i}'s 95% CI: {c['inside']} of {c['n']} cells",
                  f"- median CI half-width of cells of 3 ms and more ({c['n_3ms']} cells, both runs): "
                  f"{c['median_rel_half_3ms']:.2%}", "",
                  f"| cell | run {i} ms ±CI | run {i + 1} ms ±CI | difference | holds | inside | launch-bound | rounds |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, c1, c2, ok, within in c["rows"]:
            lb = "yes" if c1.stats.get("launch_bound") or c2.stats.get("launch_bound") else ""
            lines.append(f"| {label} | {c1.ms:.3f} ±{half(c1):.3f} | {c2.ms:.3f} ±{half(c2):.3f} | "
                         f"{(c2.ms / c1.ms - 1):+.1%} | {'yes' if ok else '**no**'} | {'yes' if within else 'no'} | "
                         f"{lb} | {c1.stats['rounds']}, {c2.stats['rounds']} |")
    sp = speedups(runs[:2]) if len(runs) >= 2 else []
    if sp:
        agree = sum(1 for *_x, ok in sp if ok)
        narrower = sum(1 for _l, per, _a in sp for p, u in per
                       if p["speedup_high"] - p["speedup_low"] <= u["speedup_high"] - u["speedup_low"])
        lines += ["", "## Speedups over torch: paired (per-round ratios) against unpaired (independent rounds)", "",
                  f"- the two runs' paired speedups agree within their intervals in **{agree} of {len(sp)}** cells",
                  f"- the paired CI is no wider than the unpaired one in {narrower} of {2 * len(sp)} (cell, run) pairs",
                  "", "| cell | run 1 paired | run 1 unpaired | run 2 paired | run 2 unpaired | agree |",
                  "|---|---|---|---|---|---|"]
        for label, per, ok in sp:
            cells = [f"{s['speedup']:.3f} ({s['speedup_low']:.3f}–{s['speedup_high']:.3f})" for p, u in per
                     for s in (p, u)]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {'yes' if ok else '**no**'} |")
    text = "\n".join(lines) + "\n"
    (a.out / "calibration.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
