"""The timing loop's own cost per timed call, measured with the null runtime (goal: at most 2 us).

Runs ``rtbench.engine.harness_cost()`` several times and writes ``benchmarks/harness_cost.md`` with the
date, the machine, its load at the time and every repeat. Usage (from the repository root):

    PYTHONPATH=src python benchmarks/harness_cost.py [--repeats 5] [--out benchmarks/harness_cost.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

GOAL_NS = 2000.0


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("harness_cost.md"))
    args = ap.parse_args()

    import torch

    import rtbench
    from rtbench.engine import HARNESS, harness_cost
    from rtbench.hardware import cpu_model

    load_before = uptime()
    results = [harness_cost() for _ in range(args.repeats)]
    load_after = uptime()
    per_call = [r["per_call_ns"] for r in results]
    wall = [r["loop_wall_ns"] for r in results]
    worst = max(max(per_call), max(wall))
    verdict = "met" if worst <= GOAL_NS else "NOT met"
    p = HARNESS
    lines = [
        "# Harness cost per timed call (null runtime)",
        "",
        f"- **Date:** {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- **Machine:** {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- **Software:** rtbench {rtbench.__version__}, Python {platform.python_version()}, torch {torch.__version__}",
        f"- **Load (`uptime`) before:** `{load_before}`",
        f"- **Load (`uptime`) after:** `{load_after}`",
        "- **Command:** `PYTHONPATH=src python benchmarks/harness_cost.py"
        + (f" --repeats {args.repeats}`" if args.repeats != 5 else "`"),
        f"- **What:** `rtbench.engine.harness_cost()` times the `null` runtime (a call that does nothing) with the "
        f"same loop and host clock as every CPU block ({p['warmup_s']:g} s of warm-up, then one block of at least "
        f"{p['min_calls']} timed calls and {p['seconds']:g} s). *Per call* is the 10% trimmed mean of the samples: what "
        "the clock adds to each measured call. *Loop wall* is the block's wall time over its calls: the whole "
        "per-call cost of the loop (clock, sample storage, the end-of-block check).",
        "",
        "| repeat | per call (ns, trimmed mean) | median (ns) | loop wall per call (ns) | timed calls |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        lines.append(f"| {i} | {r['per_call_ns']:.0f} | {r['median_ns']:.0f} | {r['loop_wall_ns']:.0f} | {r['calls']} |")
    lines += [
        "",
        f"Median over repeats: {statistics.median(per_call):.0f} ns per call, {statistics.median(wall):.0f} ns loop "
        f"wall per call. Goal (at most {GOAL_NS / 1000:g} µs for both, every repeat): **{verdict}** "
        f"(worst {worst:.0f} ns).",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
