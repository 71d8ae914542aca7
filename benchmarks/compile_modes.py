"""Which torch.compile mode should the torch-compile runtime use by default on a GPU?

    PYTHONPATH=src python3 benchmarks/compile_modes.py --out $OUT [--precision fp16] [--size 224 --batch 16]

Runs one cell with the torch-compile runtime once per mode (rtbench.run, the default GPU timing policy) and
prints, per mode: the compile time (first call) and the trimmed mean with its 95% CI, next to eager torch.
Modes that replay CUDA graphs (reduce-overhead, max-autotune) are left out: rtbench shows CUDA graphs as
their own rows (torch-cudagraph), not inside torch-compile.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import rtbench

MODES = ("default", "max-autotune-no-cudagraphs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("compile_modes.py needs a CUDA GPU")
    out = Path(a.out)
    lines = [f"# torch.compile modes on {torch.cuda.get_device_name(0)}", "",
             f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- command: `PYTHONPATH=src python3 benchmarks/compile_modes.py {' '.join(sys.argv[1:])}`",
             f"- torch {torch.__version__}, rtbench {rtbench.__version__}; resnet18, {a.precision}, "
             f"{a.size} px, batch {a.batch}, compute boundary", "",
             "| runtime | mode | compile (first call), s | trimmed mean, ms | 95% CI, ms |", "|---|---|---|---|---|"]
    cell = dict(precision=a.precision, sizes=[a.size], batches=[a.batch], device="cuda", out=out / "results",
                report=False)
    for rt, mode in [("torch", "-")] + [("torch-compile", m) for m in MODES]:
        t0 = time.perf_counter()
        r = rtbench.run(runtimes=rt, options={"compile_mode": mode} if mode != "-" else None, budget=30, **cell)
        row = r.to_pandas().iloc[0]
        if row.status != "ok":
            lines.append(f"| {rt} | {mode} | - | {row.status}: {row.reason} | - |")
        else:
            lines.append(f"| {rt} | {mode} | {row.first_call_ms / 1e3:.1f} | {row.ms:.4f} | "
                         f"{row.ci_low_ms:.4f}-{row.ci_high_ms:.4f} |")
        print(lines[-1], f"(run {time.perf_counter() - t0:.0f} s)", flush=True)
        (out / "compile_modes.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
