#!/usr/bin/env bash
# The default-run benchmark: the default `rtbench run` on this machine's CPU, timed with /usr/bin/time -v.
# Goal: at most 5 minutes. Writes benchmarks/default_run.md (date, machine, load, command, wall time, cells,
# cells whose CI is wider than the target) and, beside it, that run's own report: default_run_report.md and default_run_report.html (the
# HTML has the plots embedded). Run it from anywhere when the machine is quiet:
#     benchmarks/default_run.sh [OUT_DIR]        (default OUT_DIR: a fresh temporary folder)
# PY picks the interpreter (default: .venv/bin/python, else python3); REPORT the summary to write (the run's
# report goes beside it, as <REPORT without .md>_report.md/.html);
# RTBENCH_ARGS adds arguments (only to check this script on a tiny sweep; the benchmark itself uses none).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
OUT="${1:-$(mktemp -d /tmp/rtbench-default-run.XXXXXX)}"
REPORT="${REPORT:-$ROOT/benchmarks/default_run.md}"
TIMELOG="$(mktemp /tmp/rtbench-time.XXXXXX)"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

LOAD_BEFORE="$(uptime)"
STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
set +e
# shellcheck disable=SC2086
/usr/bin/time -v -o "$TIMELOG" "$PY" -m rtbench run --device cpu --out "$OUT" ${RTBENCH_ARGS:-}
RC=$?
set -e
LOAD_AFTER="$(uptime)"

"$PY" - "$OUT" "$TIMELOG" "$REPORT" "$RC" "$STARTED" "$LOAD_BEFORE" "$LOAD_AFTER" "${RTBENCH_ARGS:-}" <<'PYEOF'
import os, platform, re, shutil, sys
from collections import Counter
from pathlib import Path

out, timelog, report, rc, started, load_before, load_after, extra = sys.argv[1:]
from rtbench.hardware import cpu_model
from rtbench.results import list_runs, Run

tv = Path(timelog).read_text()
def field(name):
    m = re.search(rf"^\s*{re.escape(name)}: (.*)$", tv, re.M)
    return m.group(1).strip() if m else "?"
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(x) for x in wall.split(":")] if wall != "?" else []
secs = sum(v * 60 ** i for i, v in enumerate(reversed(parts))) if parts else float("nan")
runs = list_runs(out) if (Path(out) / "rtbench.sqlite").exists() else []
lines = ["# Default run on the CPU", "",
         f"- **Date:** {started}",
         f"- **Machine:** {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}",
         f"- **Load (`uptime`) before:** `{load_before}`",
         f"- **Load (`uptime`) after:** `{load_after}`",
         f"- **Command:** `/usr/bin/time -v rtbench run --device cpu --out {out}{' ' + extra if extra else ''}` "
         f"(exit code {rc})",
         f"- **Wall time:** {wall} ({secs:.0f} s; goal: at most 300 s: **{'met' if secs <= 300 else 'NOT met'}**)",
         f"- **Max resident memory:** {field('Maximum resident set size (kbytes)')} kB; "
         f"user {field('User time (seconds)')} s, system {field('System time (seconds)')} s",
         ]
if runs:
    run = Run.load(runs[-1]["id"], out)
    statuses = Counter(c.status.value for c in run.cells)
    wide = sum(1 for c in run.cells if c.stats.get("ci_above_target"))
    tb = run.time_breakdown()
    s = run.sweep
    lines += [f"- **Run:** `{run.id}`, status {run.status}; runtimes {', '.join(s.runtimes)}; sizes "
              f"{', '.join(map(str, s.sizes))}; batches {', '.join(map(str, s.batches))}; {', '.join(s.precisions)}",
              f"- **Cells:** {len(run.cells)} ({', '.join(f'{n} {k}' for k, n in sorted(statuses.items()))}); "
              f"**CI wider than the target:** {wide}",
              f"- **Where the time went** (as the run recorded it, {tb['total']:.0f} s in `run()`): " + ", ".join(
                  f"{k} {tb[k]:.1f} s" for k in ("measure", "setup", "checks", "workers", "prepare", "imports",
                                                 "harness", "peaks", "fingerprint", "report", "unaccounted", "overlap")),
              ]
    copies = []
    for ext in ("md", "html"):  # this run's report, beside the summary
        src, dst = run.report_dir / f"report.{ext}", Path(report[: -len(".md")] + f"_report.{ext}")
        if src.exists():
            shutil.copyfile(src, dst)
            copies.append(f"`{dst.name}`")
    lines.append(f"- **Report of this run:** {' and '.join(copies) or 'none written'} (copied from "
                 f"`{run.report_dir}`; the Markdown's images are embedded in the HTML only)")
else:
    lines.append("- **Run:** none found in the output folder (see the exit code)")
Path(report).write_text("\n".join(lines) + "\n", encoding="utf-8")
print("\n".join(lines))
PYEOF
rm -f "$TIMELOG"
exit "$RC"
