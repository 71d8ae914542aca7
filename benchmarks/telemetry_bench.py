"""Does NVML sampling move the timings? The same cells timed with and without the telemetry sampler.

    PYTHONPATH=src python3 benchmarks/telemetry_bench.py --out $OUT [--seconds 2] [--repeats 3]

Cells: resnet18 (random weights), torch eager, fp32, 224 px, batches 1 and 16, compute boundary, on
cuda:0. Each cell is prepared once, then timed ``--repeats`` times in each mode, alternating the order
(off,on / on,off) so drift hits both; every timed loop is one block of ``--seconds`` after 0.5 s of
warm-up. Reported: the 10% trimmed mean of all samples of each mode, the difference in % with a 95% CI
paired by repeat (rtbench.stats.paired_speedup), the sampler's own cost per sample, and the power / energy
figures the sampler saw. Writes <out>/telemetry_bench.md and <out>/telemetry_bench.json.
On a machine without CUDA it says so and exits 0 without measuring.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from rtbench import stats, telemetry
from rtbench.env import fingerprint
from rtbench.models import resolve
from rtbench.runtimes.base import get as get_runtime
from rtbench.runtimes.common import make_input, sync
from rtbench.spec import Cell, Sweep
from rtbench.timing import CudaEventClock, HostClock, block, measure_once

BATCHES = (1, 16)
SIZE = 224


def sampler_cost(device: str, n: int = 200, sampler_factory=telemetry.Sampler) -> float:
    """Microseconds one sample takes (all NVML queries of one tick), measured on the calling thread."""
    s = sampler_factory(device)
    if not s.available:
        return float("nan")
    t0 = time.perf_counter()
    for _ in range(n):
        s.sample()
    return (time.perf_counter() - t0) / n * 1e6


def bench_cell(runtime, cell: Cell, seconds: float, repeats: int, sampler_factory) -> dict:
    """Time one prepared cell ``repeats`` times with and without the sampler, in alternating order."""
    x = make_input(cell.batch, cell.size)
    sess = runtime.session(cell, x)
    try:
        sess.call()
        sync(cell.device)
        clock = CudaEventClock(sess.stream) if sess.stream is not None else HostClock()
        samples: dict[str, list[np.ndarray]] = {"off": [], "on": []}
        tele: list[dict] = []
        for r in range(repeats):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                measure_once(sess.call, clock, seconds=0.5)  # warm-up
                s = sampler_factory(cell.device) if mode == "on" else None
                with s or contextlib.nullcontext():
                    b = block(sess.call, clock, seconds, min_calls=20)
                if s is not None:
                    tele.append(s.summary(calls=len(b.primary_ms), batch=cell.batch))
                samples[mode].append(b.primary_ms)
    finally:
        sess.close()
    off, on = np.concatenate(samples["off"]), np.concatenate(samples["on"])
    per = {m: {r: float(stats.trimmed_mean(a)) for r, a in enumerate(samples[m])} for m in samples}
    ratio = stats.paired_speedup(per["on"], per["off"])  # on / off by repeat: > 1 means sampling slowed the cell
    return {
        "batch": cell.batch, "off_ms": float(stats.trimmed_mean(off)), "on_ms": float(stats.trimmed_mean(on)),
        "off_per_repeat_ms": [float(stats.trimmed_mean(a)) for a in samples["off"]],
        "on_per_repeat_ms": [float(stats.trimmed_mean(a)) for a in samples["on"]],
        "diff_pct": (ratio["speedup"] - 1) * 100, "diff_low_pct": (ratio["speedup_low"] - 1) * 100,
        "diff_high_pct": (ratio["speedup_high"] - 1) * 100, "calls_off": int(len(off)), "calls_on": int(len(on)),
        "telemetry": tele,
    }


def _mean(tele: list[dict], key: str) -> float:
    vals = [t[key] for t in tele if t.get(key) is not None]
    return float(np.mean(vals)) if vals else float("nan")


def markdown(res: dict) -> str:
    fp = res["env"]
    lines = [
        "# Telemetry overhead: timings with and without NVML sampling", "",
        f"- **Date:** {res['date']}", f"- **GPU:** {fp.get('gpu')} (driver {(fp.get('nvml') or {}).get('driver')}), "
        f"torch {fp.get('torch')}, CUDA {fp.get('cuda')}",
        f"- **Command:** `{res['command']}`",
        f"- **Cells:** resnet18 torch eager fp32 {SIZE} px, compute boundary; {res['repeats']} repeats per mode of "
        f"{res['seconds']:g} s timed loops, order alternated; sampler interval {res['interval_s'] * 1e3:g} ms",
        f"- **Sampler cost:** {res['sampler_cost_us']:.0f} µs per sample on the calling thread", "",
        "| Batch | Off: trimmed mean (ms) | On: trimmed mean (ms) | Difference (95% CI) | Calls off / on |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c in res["cells"]:
        lines.append(f"| {c['batch']} | {c['off_ms']:.4f} | {c['on_ms']:.4f} | {c['diff_pct']:+.2f}% "
                     f"({c['diff_low_pct']:+.2f}% to {c['diff_high_pct']:+.2f}%) | {c['calls_off']} / {c['calls_on']} |")
    lines += ["", "Power and energy while sampling (mean over the repeats):", "",
              "| Batch | Power (W) | SM clock (MHz) | Temp (°C) | GPU util (%) | J / image | images / J | "
              "Energy: counter vs power samples (J) | Reasons seen | Samples |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for c in res["cells"]:
        t = c["telemetry"]
        if not t or not t[0].get("available"):
            lines.append(f"| {c['batch']} | {(t[0] if t else {}).get('reason', 'not available')} |||||||||")
            continue
        reasons = sorted({r for x in t for r in x.get("reasons", [])}) or ["none"]
        lines.append(
            f"| {c['batch']} | {np.mean([telemetry.mean_of(x, 'power_w') for x in t]):.1f} | "
            f"{np.mean([telemetry.mean_of(x, 'sm_clock_mhz') for x in t]):.0f} | "
            f"{np.mean([telemetry.mean_of(x, 'temp_c') for x in t]):.0f} | "
            f"{np.mean([telemetry.mean_of(x, 'gpu_util_pct') for x in t]):.0f} | {_mean(t, 'joules_per_image'):.4f} | "
            f"{_mean(t, 'images_per_joule'):.1f} | {_mean(t, 'energy_j'):.1f} ({t[0].get('energy_source')}) vs "
            f"{_mean(t, 'energy_j_from_power'):.1f} | {', '.join(reasons)} | {sum(x['samples'] for x in t)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for telemetry_bench.md and .json")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each timed loop")
    ap.add_argument("--repeats", type=int, default=3, help="timed loops per mode and cell")
    ap.add_argument("--interval", type=float, default=telemetry.DEFAULT_INTERVAL_S, help="sampler interval (s)")
    ap.add_argument("--device", default="cuda:0")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("telemetry_bench: no CUDA GPU here (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a CUDA machine.")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    factory = lambda dev: telemetry.Sampler(dev, interval_s=args.interval)  # noqa: E731
    if not factory(args.device).available:
        print(f"telemetry_bench: {factory(args.device).reason}; timings are still compared (sampler is a no-op).")
    sweep = Sweep(runtimes=("torch",), sizes=(SIZE,), batches=BATCHES, device=args.device)
    runtime = get_runtime("torch")(resolve("resnet18", "random"), sweep, "fp32", out)
    try:
        cells = [bench_cell(runtime, c, args.seconds, args.repeats, factory) for c in sweep.cells()]
    finally:
        runtime.close()
    res = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
           "seconds": args.seconds, "repeats": args.repeats, "interval_s": args.interval,
           "sampler_cost_us": sampler_cost(args.device, sampler_factory=factory), "env": fingerprint(args.device),
           "cells": cells}
    md = markdown(res)
    (out / "telemetry_bench.md").write_text(md, encoding="utf-8")
    (out / "telemetry_bench.json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
