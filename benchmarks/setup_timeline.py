"""Where each run of a store spent its set-up, runtime by runtime, and how consecutive runs agree.

    python benchmarks/setup_timeline.py STORE_DIR [--out FILE.md]

For every run in ``STORE_DIR/rtbench.sqlite``, oldest first: its time inside ``run()`` and the seconds the
rounds were given beyond the budget (the floor), rounds per cell and block length; then per runtime, from each
cell's record (``info.prepare_began_s`` and ``prepare_wall_s``, seconds after the engine started; the worker's
set-up; ``setup.module_to_device_s``, where torch.compile's wrapping is timed): when its last cell was ready and
its slowest worker set-up. For each run after the first, the agreement with the one before it as
``benchmarks/calibration.py`` counts it. Prints the page, or writes it to FILE.md.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration import compare  # noqa: E402
from rtbench.results import Run  # noqa: E402

PER_RUNTIME = """
SELECT runtime,
       MAX(json_extract(info, '$.prepare_began_s') + json_extract(info, '$.prepare_wall_s')),
       MAX(json_extract(info, '$.worker_setup_s')),
       MAX(json_extract(setup, '$.module_to_device_s'))
FROM cells WHERE run_id = ? GROUP BY runtime ORDER BY runtime
"""


def fmt(x) -> str:
    return "" if x is None else f"{x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    con = sqlite3.connect(a.store / "rtbench.sqlite")
    ids = [r for (r,) in con.execute("SELECT id FROM runs ORDER BY created")]
    lines = [f"# Set-up timeline of `{a.store.name}`", "",
             f"Written by `python benchmarks/setup_timeline.py STORE_DIR` ({len(ids)} runs).", ""]
    runs = []
    for rid in ids:
        r = Run.load(rid, a.store)
        runs.append(r)
        tb = r.time_breakdown()
        rounds = [c.stats.get("rounds", 0) for c in r.cells if c.measured]
        lines += [f"## `{rid}`", "",
                  f"- inside `run()`: {tb.get('total', float('nan')):.1f} s; the rounds ran "
                  f"{r.schedule.get('extended_s', 0):.1f} s past the budget's deadline (to get half the budget); rounds per "
                  f"cell {min(rounds)}–{max(rounds)}, block {r.schedule.get('block_s', float('nan')) * 1e3:.0f} ms",
                  "", "| runtime | last cell ready (s after the engine started) | slowest worker set-up (s) | "
                  "slowest `module_to_device_s` (s) |", "|---|---|---|---|"]
        lines += [f"| {rt} | {fmt(ready)} | {fmt(setup)} | {fmt(wrap)} |"
                  for rt, ready, setup, wrap in con.execute(PER_RUNTIME, (rid,))]
        lines.append("")
    for prev, cur in zip(runs, runs[1:]):
        c = compare(prev, cur)
        lines += [f"`{cur.id}` against `{prev.id}`: |m2 − m1| ≤ √(h1² + h2²) in **{c['held']} of {c['n']}** "
                  f"cells; median CI half-width of cells of 3 ms and more {c['median_rel_half_3ms']:.2%} "
                  f"({c['n_3ms']} cells)", ""]
    con.close()
    text = "\n".join(lines)
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
