"""Time ``write_report`` on the seed grid: 4 sizes x 4 batches, 3 runtimes, 2 precisions (96 cells).

The store is synthetic (real SQLite, seeded samples; see rtbench.report.synthetic), so the figure is the
report's own cost: loading the run, the speedup bootstraps of ``to_pandas``, 18 plots, Markdown and HTML.

    PYTHONPATH=src python benchmarks/report_bench.py [--repeat 3] [--samples 200] [--write benchmarks/report_bench.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rtbench.hardware import cpu_model
from rtbench.report import write_report
from rtbench.report.synthetic import build_run
from rtbench.results import Run

LIMIT_S = 10.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=200, help="timed calls per cell in the synthetic store")
    ap.add_argument("--formats", default="md,html")
    ap.add_argument("--write", type=Path, help="append the result as a Markdown section to this file")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_run(tmp, run_id="bench", precisions=("fp32", "fp16"), n=a.samples)
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            write_report(Run.load("bench", tmp), formats=a.formats)  # from the store, as `rtbench report` does
            times.append(time.perf_counter() - t0)
    worst = max(times)
    line = (f"write_report ({a.formats}), 96 cells x {a.samples} samples: median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s, max {worst:.2f} s over {a.repeat} runs (limit {LIMIT_S:.0f} s)")
    print(line)
    if a.write:
        cmd = "PYTHONPATH=src python " + " ".join(sys.argv)
        section = (f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\n- Machine: {cpu_model()}, "
                   f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared machine), "
                   f"Python {platform.python_version()}, {platform.platform()}\n- Command: `{cmd}`\n- Result: {line}\n")
        if not a.write.exists():
            a.write.write_text("# Report rendering time\n\nThe seed grid (4 sizes x 4 batches) with 3 runtimes and 2 "
                               "precisions, from a synthetic store. Target: at most 10 s.\n", encoding="utf-8")
        with a.write.open("a", encoding="utf-8") as f:
            f.write(section)
    return 0 if worst <= LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
