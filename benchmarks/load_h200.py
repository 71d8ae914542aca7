"""Latency under load on one machine: the highest QPS at p99 within an SLO per runtime, and the load generator's
own capacity with the null runtime. Writes its results page itself.

    python benchmarks/load_h200.py [--results benchmarks/results] [--device cuda] [--model resnet18] [--size 224]
        [--precision fp16] [--runtimes torch,torch-compile,onnxruntime] [--max-batch 16] [--max-delay-ms 2]
        [--slo 10ms] [--duration 1]

Defaults: the H200 proof of `rtbench load` (ResNet18 224 px fp16, torch, torch-compile and ONNX Runtime, one
batching policy, --qps auto, SLO p99 <= 10 ms). Then the null runtime (does nothing) serves 1x, 5x and 10x the
highest rate offered to any runtime, with the same policy and with max-batch 1: what the generator sustains by
itself. Everything goes to RESULTS/<machine>-<UTC date>-load/: README.md (machine, command, wall time, the
tables), rtbench.sqlite (both runs, every request's latency), and each run's report folder (load.md, load.html,
images). A CPU smoke test: --device cpu --model entry_models:tiny_cnn --size 32 --precision fp32
--runtimes torch,onnxruntime --slo 5ms (with tests/ on PYTHONPATH).
"""
from __future__ import annotations

import argparse
import math
import platform
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import rtbench  # noqa: E402
from rtbench.loadspec import LoadSpec  # noqa: E402
from rtbench.report.load import best_rows, ci_text  # noqa: E402
from rtbench.report.markdown import table_md  # noqa: E402
from rtbench.results import Run  # noqa: E402


def machine_name(env: dict, device: str) -> str:
    """'h200' for an NVIDIA H200, else the GPU's or 'cpu' (for the results folder's name)."""
    if not device.startswith("cuda"):
        return "cpu"
    gpu = str(env.get("gpu") or "gpu")
    m = re.search(r"\b([A-Z]\d{2,4}[A-Z]?)\b", gpu)
    return (m.group(1) if m else re.sub(r"[^A-Za-z0-9]+", "-", gpu)).lower()


def num(v, digits: int = 0) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def progress(p: dict) -> None:
    extra = (f"achieved {num(p.get('achieved_qps'))}, p99 {num(p.get('p99_ms'), 2)} ms "
             f"(bound {num(p.get('es_p99_ms'), 2)}), mean batch {num(p.get('mean_batch'), 1)}, {p.get('validity')}"
             if p["status"] == "ok" else f"{p['status']}: {p['reason']}")
    print(f"  {p['runtime']} {p['policy']} {p['kind']} {num(p['offered_qps'])} QPS: {extra}", flush=True)


def null_rows(df) -> list[list[str]]:
    rows = []
    for _i, r in df.sort_values(["max_batch", "offered_qps"]).iterrows():
        rows.append([f"max-batch {r['max_batch']} / {r['max_delay_ms']:g} ms", num(r["offered_qps"]),
                     num(r.get("achieved_qps")), num(r.get("p50_ms"), 3), num(r.get("p99_ms"), 3),
                     num(r.get("mean_batch"), 1), str(r.get("validity") if r["status"] == "ok" else r["reason"])])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--runtimes", default="torch,torch-compile,onnxruntime")
    ap.add_argument("--max-batch", default="16")
    ap.add_argument("--max-delay-ms", default="2")
    ap.add_argument("--slo", default="10ms")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--search-steps", type=int, default=4)
    ap.add_argument("--commit", default=None,
                    help="the commit of the tree, named on the page before what git says (a copy may carry a stale .git)")
    ap.add_argument("--date", default=datetime.now(timezone.utc).strftime("%Y-%m-%d"), help="UTC date for the folder")
    a = ap.parse_args()
    t0 = time.perf_counter()
    common = dict(model=a.model, precision=a.precision, size=a.size, max_delay_ms=a.max_delay_ms, device=a.device,
                  duration=a.duration, progress=progress)
    date = a.date
    tmp = Path(a.results) / f"load-{date}-partial"  # renamed once the machine's name is known
    print(f"runtimes {a.runtimes}: {a.model} {a.size} px {a.precision}, max-batch {a.max_batch} / {a.max_delay_ms} "
          f"ms, qps auto, SLO p99 <= {a.slo}", flush=True)
    df = rtbench.load_test(runtimes=a.runtimes, max_batch=a.max_batch, qps="auto", slo=a.slo, out=tmp,
                           search_steps=a.search_steps, **common)
    t_real = time.perf_counter() - t0
    ok = df[df["status"] == "ok"]
    top = float(ok["offered_qps"].max()) if len(ok) else 1000.0
    batch = int(a.max_batch.split(",")[-1])
    print(f"null runtime: the generator alone, up to 10x the highest rate offered ({top:,.0f} QPS)", flush=True)
    null = rtbench.load_test(runtimes="null", max_batch=f"1,{batch}", qps=f"{top},{5 * top},{10 * top}",
                             out=tmp / "null", **common)  # a store of its own: millions of requests, kept apart
    wall = time.perf_counter() - t0
    for cache in (tmp / "cache", tmp / "null" / "cache"):  # ONNX exports: rebuilt from the model, not results
        shutil.rmtree(cache, ignore_errors=True)
    run = Run.load(df.attrs["run_id"], tmp)
    d = Path(a.results) / f"{machine_name(run.env, run.sweep.device)}-{date}-load"
    if d.exists():
        raise SystemExit(f"{d} exists already: move it away first")
    tmp.rename(d)
    write_page(d, run, df, null, top, t_real, wall, a.commit)
    text = (d / "README.md").read_text()
    print(text[text.index("## Highest"):text.index("## Every point")])


def write_page(d: Path, run: Run, df, null, top: float, t_real: float, wall: float, commit: str | None) -> None:
    env = run.env
    spec = LoadSpec.from_dict(df.attrs["load"])
    table, lines = best_rows(df, spec)
    served = null[(null["status"] == "ok") & (null["max_batch"] == null["max_batch"].max())]
    margin = max((r["offered_qps"] for _i, r in served.iterrows() if r["valid"]), default=math.nan)
    pkgs = env.get("packages") or {}
    machine = (f"{env.get('gpu')} (driver {(env.get('nvml') or {}).get('driver')}), " if run.sweep.device.startswith("cuda") else "") + \
        f"{env.get('cpu')}, Python {platform.python_version()}, torch {env.get('torch')}, " + \
        ", ".join(f"{k} {v}" for k, v in pkgs.items() if v and k.startswith("onnx"))
    page = [
        f"# rtbench load on {machine_name(env, run.sweep.device).upper()} — {d.name.rsplit('-load', 1)[0].split('-', 1)[1]}: "
        "the highest QPS within a p99 SLO",
        "",
        f"Machine: {machine}. rtbench from the source tree at commit {commit or env.get('git_commit') or 'unknown'}.",
        "",
        f"Command: `python benchmarks/load_h200.py {' '.join(sys.argv[1:])}` (this page, the store and the reports "
        f"were written by it; --results was a scratch folder on the machine, copied here as written). Wall time {wall:.0f} s ({t_real:.0f} s for the runtimes, the rest the null runtime).",
        "",
        f"Load: {run.sweep.model} {run.sweep.sizes[0]} px {', '.join(run.sweep.precisions)}, boundary "
        f"{run.sweep.boundary}; {'; '.join(b.label for b in spec.policies)}; Poisson arrivals (seed {spec.seed}), "
        f"--qps auto (10% to 120% of each runtime's closed-loop capacity) then a binary search; {spec.duration_s:g} s "
        f"counted per point after {spec.warmup_s:g} s of warm-up. Run `{run.id}`: report in `{run.id}/load.md` "
        f"(and `load.html`), every request in `rtbench.sqlite`.",
        "",
        f"## Highest QPS at p99 ≤ {spec.slo_ms:g} ms",
        "",
        table_md(table),
        *[f"- {ln}" for ln in lines],
        "",
        "## The generator alone (null runtime)",
        "",
        f"The null runtime does nothing: these points are the load generator's own cost (run `{null.attrs['run_id']}`, "
        f"store `null/rtbench.sqlite`, {(d / 'null' / 'rtbench.sqlite').stat().st_size / 2**20:.0f} MiB). "
        f"The highest rate offered to a runtime above was {top:,.0f} QPS; with the same batching policy the "
        f"generator served {num(margin)} QPS validly ({margin / top:.1f}x); max-batch 1 shows its cost per request."
        if math.isfinite(margin) else "The null runtime served no valid point with the runtimes' batching policy.",
        "",
        table_md(_table(["policy", "offered QPS", "achieved QPS", "p50 ms", "p99 ms", "mean batch", "validity"],
                        null_rows(null))),
        "",
        "## Every point",
        "",
        table_md(_table(["runtime", "offered QPS", "achieved QPS", "p50 ms", "p99 ms (95% CI)", "p99 bound ms",
                         "mean batch", "validity", "passes"],
                        [[r["runtime"], num(r["offered_qps"]), num(r.get("achieved_qps")), num(r.get("p50_ms"), 2),
                          f"{num(r.get('p99_ms'), 2)} ({ci_text(r.get('p99_low_ms'), r.get('p99_high_ms'))})",
                          num(r.get("es_p99_ms"), 2), num(r.get("mean_batch"), 1),
                          str(r.get("validity") if r["status"] == "ok" else f"{r['status']}: {r['reason']}"),
                          "best" if r["best"] else "yes" if r["passes"] else "no"]
                         for _i, r in df.sort_values(["runtime", "offered_qps"]).iterrows()])),
    ]
    (d / "README.md").write_text("\n".join(page) + "\n", encoding="utf-8")


def _table(head, rows):
    from rtbench.report.blocks import Table

    return Table(head, rows)


if __name__ == "__main__":
    main()
