"""``rtbench load``: the command line of rtbench.loadtest. It parses and prints; loadtest decides."""
from __future__ import annotations

import math
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rtbench import api
from rtbench.loadspec import DEFAULT_DURATION_S, SEARCH_STEPS
from rtbench.spec import DEFAULT_CELL_TIMEOUT_S

console = Console()
err = Console(stderr=True)
EXIT_NOT_MEASURED = 3


def _num(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def _line(p: dict) -> str:
    """One point as it ends: what ran, at which rate, and how it went."""
    head = f"{p['runtime']} {p['precision']} {p['policy']} {p['kind']} {_num(p['offered_qps'], 0)} QPS"
    if p["status"] != "ok":
        return f"{head}: {p['status']}: {p['reason']}"
    verdict = "passes" if p["passes"] else "fails" if p.get("slo_ms") is not None else ""
    return (f"{head}: achieved {_num(p['achieved_qps'], 0)}, p50 {_num(p['p50_ms'])} ms, p99 {_num(p['p99_ms'])} ms "
            f"(bound {_num(p['es_p99_ms'])}), mean batch {_num(p['mean_batch'], 1)}; {p['validity']} {verdict}")


def load(
    model: str = typer.Option(api.DEFAULT_MODEL, help="resnet18 / torchvision:NAME, timm:NAME, path/to/model.onnx, "
                              "or package.module:function returning an nn.Module."),
    runtimes: str = typer.Option("", help="Comma-separated runtimes; default: every available one."),
    precision: str = typer.Option(api.DEFAULT_PRECISION, help="fp32, tf32, fp16, bf16 (comma-separated for several)."),
    size: int = typer.Option(224, help="Input size in pixels (square)."),
    device: str = typer.Option(api.DEFAULT_DEVICE, help="auto, cpu, cuda or cuda:N."),
    boundary: str = typer.Option(api.DEFAULT_BOUNDARY, help="compute or end-to-end."),
    weights: str = typer.Option(api.DEFAULT_WEIGHTS, help="random, or pretrained (needs the internet)."),
    max_batch: str = typer.Option("8", help="Dynamic batching: the most requests per batch (comma-separated to "
                                  "sweep several)."),
    max_delay_ms: str = typer.Option("2", help="Dynamic batching: the longest the oldest request waits for a batch "
                                     "to fill, ms (comma-separated to sweep several)."),
    qps: str = typer.Option("auto", help="Offered rates (comma-separated): requests per second, or shares of each "
                            "runtime's closed-loop capacity such as 50%; auto: 10% to 120% of it."),
    slo: Optional[str] = typer.Option(None, help="p99 latency SLO with its unit, e.g. 15ms: turns on the search for "
                                      "the highest rate that meets it."),
    duration: float = typer.Option(DEFAULT_DURATION_S, help="Seconds of counted requests per point (after a warm-up "
                                   "of a tenth of it)."),
    seed: int = typer.Option(0, help="Seed of the Poisson arrival schedule."),
    search_steps: int = typer.Option(SEARCH_STEPS, help="Points the binary search may add per runtime and policy."),
    out: str = typer.Option(api.DEFAULT_OUT, help="Output folder: holds rtbench.sqlite and one folder per run."),
    compile_mode: Optional[str] = typer.Option(None, help="torch.compile mode for the torch-compile runtime."),
    cell_timeout: float = typer.Option(DEFAULT_CELL_TIMEOUT_S, help="Seconds one bucket's preparation or one point "
                                       "may take before its worker is killed."),
):
    """Latency under load: p99 against offered QPS per runtime and batching policy, and the highest QPS within an SLO."""
    from rtbench.loadtest import load_test

    options = {"compile_mode": compile_mode} if compile_mode else None
    df = load_test(model=model, runtimes=runtimes or None, precision=precision, size=size, max_batch=max_batch,
                   max_delay_ms=max_delay_ms, qps=qps, slo=slo, duration=duration, device=device, boundary=boundary,
                   weights=weights, out=out, seed=seed, search_steps=search_steps, options=options,
                   progress=lambda p: err.print(_line(p), highlight=False, soft_wrap=True), cell_timeout=cell_timeout)
    print_points(df)
    run_id = df.attrs["run_id"]
    console.print(f"report: {out}/{run_id}/load.md", highlight=False, soft_wrap=True)
    if df.empty or not (df["status"] == "ok").any():
        why = df["reason"].dropna().iloc[0] if len(df) and df["reason"].notna().any() else "no point ran"
        err.print(f"rtbench: no load point was measured: {why}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_NOT_MEASURED)


def print_points(df) -> None:
    """Every point, then the highest rate within the SLO per runtime and policy."""
    if df.empty:
        return
    t = Table(title="latency under load (ms; p99 bound: LoadGen's early-stopping estimate)")
    for col in ("runtime", "precision", "max-batch", "delay ms", "offered QPS", "achieved", "p50", "p99", "p99 bound",
                "batch", "validity", "passes"):
        t.add_column(col, no_wrap=col in ("runtime", "precision"))
    for _i, r in df.sort_values(["runtime", "precision", "max_batch", "max_delay_ms", "offered_qps"]).iterrows():
        ok = r["status"] == "ok"
        t.add_row(r["runtime"], r["precision"], str(r["max_batch"]), f"{r['max_delay_ms']:g}",
                  _num(r["offered_qps"], 0), _num(r.get("achieved_qps"), 0) if ok else "–",
                  _num(r.get("p50_ms")) if ok else "–", _num(r.get("p99_ms")) if ok else "–",
                  _num(r.get("es_p99_ms")) if ok else "–", _num(r.get("mean_batch"), 1) if ok else "–",
                  str(r.get("validity")) if ok else f"{r['status']}: {r['reason']}",
                  ("best" if r["best"] else "yes") if r["passes"] else "no")
    from rtbench.cli import show  # (rtbench.cli imports this module)

    show(t)
    spec = df.attrs.get("load") or {}
    for b in df.attrs.get("best", []):
        console.print(f"{b['runtime']} {b['precision']} max-batch {b['max_batch']} / {b['max_delay_ms']:g} ms: "
                      f"{b['qps']:,.0f} QPS at p99 <= {spec.get('slo_ms'):g} ms (p99 {b['p99_ms']:.2f} ms, bound "
                      f"{b['es_p99_ms']:.2f} ms)", highlight=False, soft_wrap=True)
