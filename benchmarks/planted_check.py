"""Does `rtbench compare` catch a known slowdown? A run as is, then one with a slowdown planted in one runtime
(``planted_slowdown.py``), compared at a threshold: every cell of that runtime of at least ``--min-ms`` should be
`slower` with the factor inside its interval, and no cell of another runtime `slower` or `faster`.

    python benchmarks/planted_check.py --out DIR --runtime onnxruntime [--factor 1.10] [--threshold 5]
        [--min-ms 1] [-- RTBENCH RUN ARGS...]

Each run is a fresh `rtbench run --out DIR/store ARGS` process (the planted one with RTBENCH_PLUGINS=planted_slowdown
and RTBENCH_SLOWDOWN=RUNTIME:FACTOR); the comparison is `benchmarks/compare_calibration.py`'s (on a copy of the
store). Writes DIR/planted-check.md: date, machine, command, commit, and every cell.
"""
from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration import run_once  # noqa: E402
from compare_calibration import ROOT, commit, compare, fmt  # noqa: E402


def run(store: Path, args: list[str], plant: str | None) -> str:
    """One `rtbench run` in a fresh interpreter, with the slowdown planted when ``plant`` is RUNTIME:FACTOR."""
    env = {"PYTHONPATH": str(ROOT / "benchmarks")}
    if plant:
        env.update(RTBENCH_PLUGINS="planted_slowdown", RTBENCH_SLOWDOWN=plant)
    return run_once(store, args, env)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--factor", type=float, default=1.10)
    ap.add_argument("--threshold", default="5")
    ap.add_argument("--min-ms", type=float, default=1.0)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then arguments for `rtbench run`")
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    store = a.out / "store"
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = run(store, args, None)
    new = run(store, args, f"{a.runtime}:{a.factor}")
    p, doc = compare(store / "rtbench.sqlite", base, new, a.threshold)
    cells = doc["cells"]
    target = [c for c in cells if c["runtime"] == a.runtime and (c["base_ms"] or 0) >= a.min_ms]
    caught = [c for c in target if c["verdict"] == "slower"]
    inside = [c for c in target if c["ratio_low"] is not None and c["ratio_low"] <= a.factor <= c["ratio_high"]]
    false = [c for c in cells if c["runtime"] != a.runtime and c["verdict"] in ("slower", "faster")]
    cmd = " ".join(["python benchmarks/planted_check.py --out DIR --runtime", a.runtime, "--factor", str(a.factor),
                    "--threshold", a.threshold, "--min-ms", f"{a.min_ms:g}"] + (["--", *args] if args else []))
    lines = [f"# `rtbench compare` against a {a.factor:g}× slowdown planted in {a.runtime}", "",
             f"- **Date:** {started}", f"- **Machine:** {platform.node()}, {platform.platform()}; device "
             f"{doc['base']['device']}",
             f"- **Command:** `{cmd}` at commit {commit()}",
             f"- **Runs:** BASE `{base}`, NEW `{new}` (planted); compared at {a.threshold}% "
             f"({doc['ci_method']}, Holm over {doc['holm']['cells']} cells); gate outcome `{doc['outcome']}`, exit "
             f"code {p.returncode}",
             f"- **Caught:** {len(caught)} of {len(target)} {a.runtime} cells of {a.min_ms:g} ms or more are `slower`; "
             f"{a.factor:g} inside the interval in {len(inside)} of them",
             f"- **False verdicts in the other runtimes:** {len(false)} of "
             f"{sum(c['runtime'] != a.runtime for c in cells)} cells",
             "", "| cell | BASE ms | NEW ms | NEW/BASE (95% CI) | verdict | why |", "|---|---|---|---|---|---|"]
    for c in cells:
        ratio = f"{fmt(c['ratio'])} ({fmt(c['ratio_low'])}–{fmt(c['ratio_high'])})" if c["ratio"] else "–"
        lines.append(f"| {c['runtime']} {c['precision']} {c['size']}px b{c['batch']} | {fmt(c['base_ms'])} | "
                     f"{fmt(c['new_ms'])} | {ratio} | {c['verdict']} | {c['reason']} |")
    text = "\n".join(lines) + "\n"
    (a.out / "planted-check.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
