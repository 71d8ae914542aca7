"""The load test's report (``load.md`` with images, ``load.html``; in English): how the load was made and judged,
the highest rate within the SLO per runtime and batching policy, conclusions, every point, the plots, and the
closed-loop latency of the batch buckets."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from rtbench.loadspec import LoadSpec
from rtbench.loadstats import ES_CONFIDENCE, min_queries
from rtbench.report.blocks import Block, Bullets, Heading, Image, Para, Table
from rtbench.report.load_plots import SERIES, cdf_at_best, p99_vs_qps, series_label, split_at_best
from rtbench.report.plots import png
from rtbench.report.table import fmt
from rtbench.results import BASELINE

FILES = {"md": "load.md", "html": "load.html"}


def write_load_report(run_id: str, out: Path | str, formats: Iterable[str] = ("md", "html"),
                      out_dir: Path | str | None = None) -> list[Path]:
    """Write the load report of run ``run_id`` into ``<out>/<run-id>/`` (or ``out_dir``); returns the files written
    (none when the run has no load points)."""
    from rtbench.loadtest import frame
    from rtbench.report import write_documents
    from rtbench.results import Run

    run, df = Run.load(run_id, out), frame(run_id, out)
    if df.empty or df.attrs.get("load") is None:
        return []
    d = Path(out_dir) if out_dir is not None else run.report_dir
    d.mkdir(parents=True, exist_ok=True)
    return write_documents(build(run, df), d, tuple(f for f in formats if f in FILES), "en", FILES)


def _ms(v) -> str:
    return fmt(v, 2 if v is not None and not (isinstance(v, float) and math.isnan(v)) and v < 100 else 0)


def ci_text(lo, hi) -> str:
    """A percentile's interval: '1.20–1.35', or '≥ 1.20' where the requests were too few to reach an upper end."""
    def missing(v):
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(lo) and missing(hi):
        return "–"
    return f"≥ {_ms(lo)}" if missing(hi) else f"≤ {_ms(hi)}" if missing(lo) else f"{_ms(lo)}–{_ms(hi)}"


def _qps(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.0f}"


def method(run, spec: LoadSpec) -> list[str]:
    s, env = run.sweep, run.env
    rates = ", ".join([f"{_qps(q)} QPS" for q in spec.qps] + [f"{f:.1%}".replace(".0%", "%") for f in spec.shares])
    if spec.shares:
        rates += (" (percentages: of each runtime's closed-loop capacity at max-batch, i.e. max-batch / its wall time "
                  "per call, synchronised)")
    return [
        f"Model {s.model} ({s.weights} weights), {s.sizes[0]} px, {', '.join(s.precisions)}, boundary {s.boundary}, "
        f"on {s.device} ({env.get('gpu') if s.device.startswith('cuda') else env.get('cpu')}).",
        f"Runtimes {', '.join(s.runtimes)}, one after another, each in its own worker process that also runs the load "
        "generator (no message passes between a request and its batch).",
        f"Arrivals: a Poisson process from seed {spec.seed} (the same pattern, scaled, at every rate and for every "
        f"runtime); offered rates: {rates}. Each point serves {spec.warmup_s:g} s of warm-up, then "
        f"{spec.duration_s:g} s whose requests are counted, longer at a low rate until {min_queries()} have "
        "arrived (LoadGen's rule: a point lasts its minimum duration and its minimum query count).",
        "Open loop: requests arrive at their scheduled time whether or not the runtime keeps up; latency = completion "
        "− scheduled arrival (no coordinated omission), split into queueing (until its batch is dispatched) and "
        "compute (until the batch's outputs are ready; on a GPU the stream is synchronised).",
        "Dynamic batching: a batch is dispatched at max-batch requests or when the oldest has waited max-delay; a "
        "partial batch runs padded as the smallest prepared batch bucket that holds it (buckets: powers of two "
        "below max-batch, and max-batch), so compiled graphs, CUDA graphs and engines are reused. Policies: "
        + "; ".join(b.label for b in spec.policies) + ".",
        f"Validity (MLPerf LoadGen's sense): at least {min_queries()} counted requests (early stopping: enough to "
        f"claim p99 with {ES_CONFIDENCE:.0%} confidence), at least {spec.min_duration_s:g} s, and not saturated "
        "(achieved below 98% of the arrival rate, queueing delay growing over the point, or requests left undone).",
        "The SLO is judged by LoadGen's early-stopping bound on p99 (the true p99 lies under it with 99% confidence), "
        "not by the point estimate; a point passes when it is valid and that bound is within the SLO. "
        + (f"SLO: p99 ≤ {spec.slo_ms:g} ms; binary search over rate (up to {spec.search_steps} more points per "
           "series) between the highest rate that passed and the lowest above it that did not."
           if spec.slo_ms is not None else "No SLO was given: no search."),
        "Percentile intervals: 95%, distribution-free (order statistics); they take requests as independent, which "
        "queueing makes only approximately true near saturation.",
    ]


def best_rows(df: pd.DataFrame, spec: LoadSpec) -> tuple[Table, list[str]]:
    """The best-rate table and the conclusions written from it (an SLO is needed: without one nothing passes)."""
    rows, lines = [], []
    if spec.slo_ms is None:
        return Table([], []), []
    best = {tuple(b[k] for k in SERIES): b for b in df.attrs.get("best", [])}
    for key, g in df.groupby(SERIES, sort=False):
        label = series_label(key)
        ok = g[g["status"] == "ok"]
        b = best.get(key)
        cap = ok["capacity_qps"].dropna()
        if b is None:
            rows.append([label, "none", "–", "–", _qps(cap.iloc[0]) if len(cap) else "–", "–"])
            if ok.empty:
                lines.append(f"{label}: no point ran ({g['status'].iloc[0]}: {g['reason'].iloc[0]}).")
            else:
                low = ok.sort_values("offered_qps").iloc[0]
                lines.append(f"{label}: no rate tried meets p99 ≤ {spec.slo_ms:g} ms (the lowest, "
                             f"{_qps(low['offered_qps'])} QPS: p99 {_ms(low['p99_ms'])} ms, {low['validity']}).")
            continue
        r = ok[ok["best"]].iloc[0]
        fails = ok[(~ok["passes"]) & (ok["offered_qps"] > b["qps"])]["offered_qps"]
        res = f"{(fails.min() - b['qps']) / b['qps']:.0%}" if len(fails) else "open above"
        base = best.get((BASELINE, *key[1:]))
        ratio = b["qps"] / base["qps"] if base is not None and key[0] != BASELINE else None
        rows.append([label, _qps(b["qps"]), f"{_ms(r['p99_ms'])} ({ci_text(r['p99_low_ms'], r['p99_high_ms'])})",
                     _ms(r["es_p99_ms"]), _qps(r["capacity_qps"]), res])
        lines.append(f"**{key[0]}** ({key[1]}) with max-batch {int(key[2])} / {key[3]:g} ms holds "
                     f"**{_qps(b['qps'])} QPS** at p99 ≤ {spec.slo_ms:g} ms (p99 {_ms(r['p99_ms'])} ms, bound "
                     f"{_ms(r['es_p99_ms'])} ms, {_qps(r['achieved_qps'])} achieved, mean batch "
                     f"{fmt(r['mean_batch'], 1)})" + (f", {ratio:.2f}x {BASELINE}" if ratio else "") + ".")
    if len(best) > 1:
        top = max(best.values(), key=lambda b: b["qps"])
        lines.insert(0, f"Highest rate within the SLO: **{top['runtime']}** ({top['precision']}, max-batch "
                        f"{int(top['max_batch'])} / {top['max_delay_ms']:g} ms), {_qps(top['qps'])} QPS.")
    head = ["series", f"QPS at p99 ≤ {spec.slo_ms:g} ms" if spec.slo_ms is not None else "QPS", "p99 ms (95% CI)",
            "p99 bound ms", "closed-loop capacity QPS", "search bracket"]
    return Table(head, rows), lines


def points_table(df: pd.DataFrame) -> Table:
    head = ["series", "kind", "offered QPS", "achieved QPS", "p50 ms", "p99 ms (95% CI)", "p99 bound ms", "p99.9 ms",
            "mean batch", "queue / compute ms", "validity", "passes"]
    rows = []
    for _i, r in df.sort_values(SERIES + ["offered_qps"], kind="stable").iterrows():
        label = series_label(tuple(r[k] for k in SERIES))
        if r["status"] != "ok":
            rows.append([label, r["kind"], _qps(r["offered_qps"]), "–", "–", "–", "–", "–", "–", "–",
                         f"{r['status']}: {r['reason']}", "no"])
            continue
        rows.append([label, r["kind"], _qps(r["offered_qps"]), _qps(r["achieved_qps"]), _ms(r["p50_ms"]),
                     f"{_ms(r['p99_ms'])} ({ci_text(r['p99_low_ms'], r['p99_high_ms'])})", _ms(r["es_p99_ms"]),
                     _ms(r["p99_9_ms"]), fmt(r["mean_batch"], 1),
                     f"{_ms(r['mean_queue_ms'])} / {_ms(r['mean_compute_ms'])}", r["validity"],
                     ("**best**" if r["best"] else "yes") if r["passes"] else "no"])
    return Table(head, rows)


def closed_loop_table(run) -> Table:
    """The bucket cells: closed-loop latency per call (its rounds' CI) and wall time with synchronisation."""
    rows = []
    for c in run.cells:
        st = c.stats
        if c.measured:
            host = (st.get("host") or {}).get("ms")
            rows.append([c.cell.runtime, c.cell.precision, str(c.cell.batch), c.status.value,
                         f"{_ms(st.get('ms'))} ({_ms(st.get('ci_low_ms'))}–{_ms(st.get('ci_high_ms'))})",
                         _ms(host), _qps(c.cell.batch * 1e3 / host) if host else "–"])
        else:
            rows.append([c.cell.runtime, c.cell.precision, str(c.cell.batch), f"{c.status.value}: {c.reason}",
                         "–", "–", "–"])
    return Table(["runtime", "precision", "batch", "status", "ms per call (95% CI)", "wall ms (synchronised)",
                  "images/s"], rows)


def build(run, df: pd.DataFrame) -> list[Block]:
    spec = LoadSpec.from_dict(df.attrs["load"])
    s = run.sweep
    blocks: list[Block] = [Heading(1, f"Latency under load: {s.model} · {s.device}"),
                           Para(f"Run `{run.id}`, {run.created}, {run.status}; {len(df)} points."),
                           Heading(2, "Method"), Bullets(method(run, spec))]
    table, lines = best_rows(df, spec)
    if spec.slo_ms is not None:
        blocks += [Heading(2, f"Highest rate with p99 ≤ {spec.slo_ms:g} ms"), table,
                   Para("Search bracket: how far above the best rate the lowest failing rate was (the best is found "
                        "to within it)."), Heading(2, "Conclusions"), Bullets(lines or ["No point passed."])]
    blocks += [Heading(2, "Points"), points_table(df)]
    figs = {"p99_vs_qps": p99_vs_qps(df, spec.slo_ms), "cdf_best": cdf_at_best(df, spec.slo_ms),
            "split_best": split_at_best(df)}
    blocks.append(Heading(2, "Plots"))
    for name, fig in figs.items():
        if fig is not None:
            blocks.append(Image(f"images/load_{name}.png", fig.axes[0].get_title(), png(fig)))
    blocks += [Heading(2, "Closed-loop latency of the batch buckets"), closed_loop_table(run)]
    return blocks
