"""One `rtbench tune`, timed from process start to exit, and its results page.

    python benchmarks/tune_proof.py --out DIR --name NAME [-- RTBENCH TUNE ARGS...]

Runs `rtbench tune --out DIR/store ARGS` in a fresh interpreter, then writes DIR/NAME.md: date, machine, the exact
command, wall time, the recommendation with its intervals, what the search tried (trials by stage and status),
and below it the tune's own report (copied with its frontier plot to DIR/NAME-frontier.png and DIR/NAME.html).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--baseline", type=Path, help="a store of default runs: its best cell at the tuned size is the bar")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    store = a.out / "store"
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rtbench", "tune", "--out", str(store), *args], capture_output=True,
                       text=True, env=env)
    wall = time.perf_counter() - t0
    (a.out / f"{a.name}-stdout.txt").write_text(p.stdout + "\n--- stderr ---\n" + p.stderr[-20000:], encoding="utf-8")
    from rtbench.store import Store
    from rtbench.tune_run import load_tune

    s = Store(store, create=False)
    tid = s.db.execute("SELECT id FROM tunes ORDER BY created DESC LIMIT 1").fetchone()
    s.close()
    lines = [f"# rtbench tune: {a.name}", "", f"- **Date:** {started}",
             f"- **Machine:** {platform.node()}, {platform.platform()}",
             f"- **Command:** `python benchmarks/tune_proof.py --out DIR --name {a.name} -- {' '.join(args)}` "
             f"(runs `rtbench tune --out DIR/store {' '.join(args)}`; exit code {p.returncode})",
             f"- **Wall time:** {wall:.1f} s from process start to exit"]
    if tid is None:
        lines.append(f"- **No tune stored**; last output: `{(p.stderr.strip().splitlines() or [''])[-1][:300]}`")
    else:
        r = load_tune(tid[0], store)
        by = Counter((t["stage"], t["status"]) for t in r.trail)
        lines.append(f"- **Tune:** `{r.id}`, budget {r.spec['budget_s']:.0f} s, {r.spec['arms']} configurations, "
                     f"{len(r.trail)} trials: " + ", ".join(f"{st} {stat} {n}" for (st, stat), n in sorted(by.items())))
        if r.winner:
            w = r.winner
            lines.append(f"- **Recommended:** `{w['runtime']}` {w['precision']} batch {w['batch']}: {w['images_s']:,.0f} "
                         f"images/s (95% CI {w['images_s_low']:,.0f}–{w['images_s_high']:,.0f}), {w['ms']:.3f} ms per "
                         "batch; parity passed")
        if a.baseline and r.winner:
            lines.append(best_default(a.baseline, r))
        src = r.report_dir
        if (src / "tune.md").exists():
            shutil.copyfile(src / "images" / "frontier.png", a.out / f"{a.name}-frontier.png")
            shutil.copyfile(src / "tune.html", a.out / f"{a.name}.html")
            body = (src / "tune.md").read_text(encoding="utf-8").replace("images/frontier.png", f"{a.name}-frontier.png")
            lines += ["", "---", "", body]
    (a.out / f"{a.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:12]))


def best_default(store: Path, r) -> str:
    """The fastest measured cell (images/s) of each run in ``store`` at the tune's size, against the tune's pick."""
    import shutil as sh
    import tempfile

    from rtbench.results import Run, list_runs

    tmp = Path(tempfile.mkdtemp())
    sh.copyfile(store, tmp / "rtbench.sqlite")  # read from a copy: a committed store is never written
    out = []
    for row in list_runs(tmp):
        run = Run.load(row["id"], tmp)
        cells = [c for c in run.cells if c.measured and c.status == "ok" and c.cell.size == r.spec["size"]]
        if cells:
            c = max(cells, key=lambda c: c.cell.batch * 1e3 / c.ms)
            hi = c.cell.batch * 1e3 / c.stats["ci_low_ms"]
            out.append(f"`{run.id}`: {c.label} {c.cell.batch * 1e3 / c.ms:,.0f} images/s (95% CI up to {hi:,.0f})")
    w = r.winner
    return (f"- **Best cell of the default runs in `{store.name}` at {r.spec['size']} px:** " + "; ".join(out)
            + f". The tune's pick: {w['images_s']:,.0f} images/s (95% CI {w['images_s_low']:,.0f}–"
            f"{w['images_s_high']:,.0f})")


if __name__ == "__main__":
    main()
