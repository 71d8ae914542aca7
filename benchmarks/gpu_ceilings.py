"""On a GPU: the time-sized matmul ceilings, the datasheet row the GPU matches, and host vs CUDA-event time.

    PYTHONPATH=src python3 benchmarks/gpu_ceilings.py --out $OUT

1. ``hardware.peaks`` name and datasheet row: the product the table matched (or "not in the datasheet table").
2. ``hardware.measure_ceilings`` once per precision (fp32, tf32, fp16, bf16): the matrix size the time-based
   sizing chose, the FLOP/s, its share of the datasheet peak, and the wall seconds of the call (its matmul,
   plus the copy-bandwidth figure every call also measures).
3. Host time against CUDA-event time, per sample, in real rtbench cells (torch and onnxruntime, both
   boundaries, 64 px batch 2 and 224 px batch 16): the host time brackets the events, so ``events - host``
   must stay under the tolerance tests/test_gpu.py uses (the largest value seen is printed).

Prints each table and writes <out>/gpu_ceilings.md (command, date, hardware, the tables).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import rtbench
from rtbench import hardware
from rtbench.spec import PRECISIONS

HOST_TOLERANCE_MS = 0.002  # as in tests/test_gpu.py
CELLS = ((64, 2), (224, 16))


def ceilings(device: str, lines: list[str]) -> None:
    peak = hardware.peaks(device, measure=False)
    sheet = peak["datasheet"] or {}
    lines += [f"- GPU: {peak['name']}; datasheet row: {peak['datasheet_product']}", "",
              "| precision | n | measured TFLOP/s | datasheet TFLOP/s | measured / datasheet | "
              "seconds (matmul + copy) |", "|---|---|---|---|---|---|"]
    for p in PRECISIONS:
        t0 = time.perf_counter()
        m = hardware.measure_ceilings(device, (p,))
        seconds = time.perf_counter() - t0
        flops, ds = m[f"matmul_{p}_flops"], sheet.get(p)
        lines.append(f"| {p} | {m[f'matmul_{p}_n']} | {flops / 1e12:.1f} | {f'{ds / 1e12:.1f}' if ds else '-'} | "
                     f"{f'{flops / ds:.0%}' if ds else '-'} | {seconds:.1f} |")
        print(lines[-1], flush=True)


def host_vs_events(out: Path, lines: list[str]) -> None:
    lines += ["", "| runtime | boundary | size | batch | samples | event median ms | max(events - host) ms | "
              f"samples over {HOST_TOLERANCE_MS} ms |", "|---|---|---|---|---|---|---|---|"]
    for boundary in ("compute", "end-to-end"):
        for size, batch in CELLS:
            r = rtbench.run(runtimes="torch,onnxruntime", sizes=[size], batches=[batch], device="cuda",
                            boundary=boundary, out=out / "results", report=False, budget=15)
            for c in r.cells:
                if c.status != "ok":
                    lines.append(f"| {c.cell.runtime} | {boundary} | {size} | {batch} | {c.status}: "
                                 f"{c.reason} | | | |")
                    continue
                ev, host = c.samples_ms, c.host_ms
                short = ev - host
                lines.append(f"| {c.cell.runtime} | {boundary} | {size} | {batch} | {len(ev)} | {np.median(ev):.4f} | "
                             f"{short.max():+.5f} | {int((short > HOST_TOLERANCE_MS).sum())} |")
                print(lines[-1], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_ceilings.py needs a CUDA GPU")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Time-sized ceilings and host vs CUDA-event time on {torch.cuda.get_device_name(0)}", "",
             f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- command: `PYTHONPATH=src python3 benchmarks/gpu_ceilings.py {' '.join(sys.argv[1:])}`",
             f"- torch {torch.__version__} (CUDA {torch.version.cuda}), rtbench {rtbench.__version__}, "
             f"{torch.cuda.device_count()} GPU(s)"]
    try:
        ceilings("cuda:0", lines)
        host_vs_events(out, lines)
    finally:
        (out / "gpu_ceilings.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out / 'gpu_ceilings.md'}")


if __name__ == "__main__":
    main()
