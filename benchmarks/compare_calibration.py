"""Does `rtbench compare` raise false alarms? Two runs of the same code, compared at a threshold: no cell may come
out `slower` or `faster`.

    python benchmarks/compare_calibration.py STORE.sqlite BASE_ID NEW_ID --out PAGE.md [--threshold 5]

The store is copied to a temporary folder first (opening a store may migrate it; the file named here must stay
byte-identical, and the page records its SHA-256 before and after). On the copy it runs, in a fresh process,
`rtbench compare COPY:BASE_ID COPY:NEW_ID --fail-on-regression T --format json`, and writes PAGE.md: date, command,
commit, the gate's output and exit code, the verdict counts, the environment fields that differ, and every cell.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=10"], capture_output=True,
                       text=True)
    return r.stdout.strip() or "unknown"


def compare(store: Path, base: str, new: str, threshold: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The gate on a copy of the store, in a fresh process; its output and its compare.json."""
    with tempfile.TemporaryDirectory(prefix="rtbench-compare-calibration-") as tmp:
        copy = Path(tmp) / store.name
        shutil.copyfile(store, copy)
        path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
        p = subprocess.run([sys.executable, "-m", "rtbench", "compare", f"{copy}:{base}", f"{copy}:{new}",
                            "--fail-on-regression", threshold, "--format", "json", "--report-dir", f"{tmp}/report"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path, "COLUMNS": "200"})
        if p.returncode not in (0, 4, 5, 6):
            raise SystemExit(f"rtbench compare failed ({p.returncode}):\n{p.stderr[-3000:]}")
        doc = json.loads((Path(tmp) / "report" / "compare.json").read_text())
        return p, {**doc, "stdout": p.stdout.replace(str(copy), str(store))}


def fmt(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def page(args, before: str, after: str, p, doc: dict) -> str:
    cells = doc["cells"]
    false = [c for c in cells if c["verdict"] in ("slower", "faster")]
    more = [c["more_rounds_base"] for c in cells if c["more_rounds_base"] is not None]
    halves = [(c["ratio_high"] - c["ratio_low"]) / 2 / c["ratio"] for c in cells if c["ratio"] is not None]
    rel = lambda s: os.path.relpath(s, ROOT) if Path(s).is_absolute() else s  # noqa: E731
    lines = [f"# `rtbench compare` of two runs of the same code at {args.threshold}%", "",
             f"- **Date:** {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}",
             f"- **Command:** `python benchmarks/compare_calibration.py {rel(args.store)} {args.base} {args.new} "
             f"--out {rel(args.out)} --threshold {args.threshold}` at commit {commit()}; it ran `rtbench compare "
             f"STORE:{args.base} STORE:{args.new} --fail-on-regression {args.threshold} --format json` on a copy "
             "of the store",
             f"- **Store:** `{rel(args.store)}`, SHA-256 {before[:16]}… before and {after[:16]}… after "
             f"({'unchanged' if before == after else '**CHANGED**'})",
             f"- **Runs:** BASE `{doc['base']['id']}` ({doc['base']['created']}), NEW `{doc['new']['id']}` "
             f"({doc['new']['created']}); {doc['base']['model']} on {doc['base']['device']}, boundary "
             f"{doc['base']['boundary']}",
             f"- **Method:** ratio NEW/BASE with a 95% CI ({doc['ci_method']}); Holm over {doc['holm']['cells']} "
             f"cells at a one-sided {doc['holm']['alpha_one_sided']:.1%}",
             f"- **False verdicts (`slower` or `faster`): {len(false)} of {len(cells)} cells**",
             f"- **Verdicts:** {', '.join(f'{n} {v}' for v, n in sorted(doc['counts'].items()))}; comparable: "
             f"{'yes' if doc['comparable'] else 'no'}; gate outcome `{doc['outcome']}`, exit code {p.returncode}",
             f"- **Interval width:** median CI half-width of the ratio {statistics.median(halves):.2%}"
             + (f"; an inconclusive cell would need about {statistics.median(more):.0f} more rounds per run "
                "(median) to be decided" if more else ""),
             "", "## The gate's output", "", "```", doc["stdout"].rstrip(), "```", "",
             "## Environment fields that differ", ""]
    if doc["fields"]:
        lines += ["| field | BASE | NEW | changes speed | blocking |", "|---|---|---|---|---|"]
        lines += [f"| `{f['key']}` | {f['base']} | {f['new']} | {'yes' if f['changes_speed'] else 'no'} | "
                  f"{'**yes**' if f['blocking'] else 'no'} |" for f in doc["fields"]]
    else:
        lines.append("None.")
    lines += ["", "## Cells", "", "| cell | BASE ms | NEW ms | NEW/BASE (95% CI) | verdict | why |",
              "|---|---|---|---|---|---|"]
    for c in cells:
        ratio = f"{fmt(c['ratio'])} ({fmt(c['ratio_low'])}–{fmt(c['ratio_high'])})" if c["ratio"] else "–"
        lines.append(f"| {c['runtime']} {c['precision']} {c['size']}px b{c['batch']} | {fmt(c['base_ms'])} | "
                     f"{fmt(c['new_ms'])} | {ratio} | {c['verdict']} | {c['reason']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--threshold", default="5")
    args = ap.parse_args()
    before = sha256(args.store)
    p, doc = compare(args.store, args.base, args.new, args.threshold)
    text = page(args, before, sha256(args.store), p, doc)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
