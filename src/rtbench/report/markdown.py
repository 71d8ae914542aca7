"""report.md: a header that says what was timed and how, the seed's table(s), and the cells that failed."""
from __future__ import annotations

from rtbench.report.table import MEASURED, seed_table


def method_lines(run) -> list[str]:
    s, env, h = run.sweep, run.env, run.harness
    p = s.policy
    device = env.get("gpu") if s.device.startswith("cuda") else env.get("cpu")
    clock = "CUDA events on the runtime's stream (host wall time with sync also stored)" if s.device.startswith(
        "cuda") else "host wall clock (perf_counter_ns)"
    boundary = {"compute": "compute — input already on the device, output left there (ONNX Runtime: IO binding)",
                "end-to-end": "end-to-end — host array in, host array out, copies included"}[s.boundary]
    meas = (run.peak.get("measured") or {})
    peaks = ", ".join(f"{k.split('_')[1]} {v / 1e12:.2f} TFLOP/s" for k, v in meas.items() if k.startswith("matmul_"))
    return [
        f"- **Model:** `{s.model}` ({s.weights} weights); parity reference: " + (", ".join(sorted(
            {c["parity"]["reference"] for c in run.cells if (c.get("parity") or {}).get("reference")})) or "PyTorch fp32"),
        f"- **Device:** {s.device} — {device}; torch threads {env.get('torch_threads')} (every runtime uses the same)",
        f"- **Boundary:** {boundary}",
        f"- **Precisions:** {', '.join(s.precisions)} (fp32 is strict: TF32 off)",
        f"- **Clock:** {clock}",
        f"- **Warm-up:** at least {p.warmup_min_calls} calls and {p.warmup_min_s:g} s, longer (up to "
        f"{p.warmup_max_s:g} s) until the medians of the last two windows of {p.warmup_window} calls agree within "
        f"{p.warmup_tolerance:.0%}",
        f"- **Stop rule:** at least {p.min_calls} calls and {p.min_time_s:g} s, then until the 95% CI half-width of "
        f"the 10% trimmed mean is under {p.ci_target:.1%} of it, or {p.max_time_s:g} s (cells marked * hit that cap)",
        f"- **Statistic:** 10% trimmed mean ± half-width of its bootstrap 95% CI; every sample is kept in the store",
        f"- **Harness cost:** {h.get('per_call_ns', float('nan')):.0f} ns per timed call (null runtime)",
        f"- **Utilisation (load %):** achieved FLOP/s (torch.utils.flop_counter, 2 FLOPs per multiply-add) over "
        f"the peak of the precision that ran: " + ("datasheet / measured" if run.peak.get("datasheet") else "measured")
        + (f" ({peaks})" if peaks else ""),
        f"- **Versions:** rtbench {env.get('rtbench')}, torch {env.get('torch')}, " + ", ".join(
            f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v and k != "torch"),
    ]


def render(run, df) -> str:
    out = [f"# rtbench report — {run.sweep.model} on {run.sweep.device}", "",
           f"Run `{run.id}`, {run.created}, status **{run.status}**.", "", "## Method", "", *method_lines(run), ""]
    counts = df["status"].value_counts().to_dict() if not df.empty else {}
    out += ["## Results", "", "Cells: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), ""]
    runtimes = [rt for rt in run.sweep.runtimes if not df.empty and (df["runtime"] == rt).any()]
    if not df.empty:
        for (prec, dev, bnd), g in df.groupby(["precision", "device", "boundary"], sort=False):
            out += [f"### {prec} · {dev} · boundary {bnd}", "", seed_table(g, runtimes)]
        out += ["Times in ms: 10% trimmed mean ±CI half-width. ↑ = speedup vs torch (ratio of trimmed means, "
                "95% CI). **Bold**: fastest with its CI clear of every other runtime's. ⚠ = outputs beyond the "
                "parity tolerance.", ""]
        bad = df[~df["status"].isin(MEASURED)]
        if len(bad):
            out += ["## Cells not measured", "", "| Runtime | Precision | Size | Batch | Status | Reason |",
                    "|---|---|---|---|---|---|"]
            for _, r in bad.iterrows():
                reason = str(r["reason"] or "").replace("|", "\\|")
                out.append(f"| {r['runtime']} | {r['precision']} | {r['size']} | {r['batch']} | {r['status']} | {reason} |")
            out.append("")
    return "\n".join(out)
