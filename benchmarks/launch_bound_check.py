"""Launch-bound cells (eager torch, small batches): plain loop vs rtbench in-process vs rtbench in a worker.

    PYTHONPATH=src python3 benchmarks/launch_bound_check.py --out $OUT

Alternates, for two rounds: a plain CUDA-event loop (benchmarks/gpu_seed.py), rtbench's timing loop run in
this process (worker.GroupMeasurer), and rtbench.run (a worker process). Shows whether the worker process
moves host-bound timings, and how much the plain loop itself drifts between rounds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import rtbench
from rtbench.spec import Cell
from rtbench.worker import GroupMeasurer

sys.path.insert(0, str(Path(__file__).parent))
from gpu_seed import plain_callables, plain_event_loop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    out = Path(a.out)
    res = out / "results"
    fns = plain_callables(None)
    lines = ["| cell | round | plain loop | rtbench in-process | rtbench worker |", "|---|---|---|---|---|"]
    for key in (("torch", "fp32", 224, 1), ("torch", "fp16", 224, 16)):
        rt, prec, size, batch = key
        sweep = rtbench.api.make_sweep(runtimes=rt, precision=prec, sizes=[size], batches=[batch], device="cuda")
        m = GroupMeasurer(sweep, rt, prec, res)
        m.setup()
        for rnd in (1, 2):
            plain = plain_event_loop(fns[key])
            inproc = m.measure(Cell(sweep.model, rt, prec, size, batch, sweep.device)).parts["stats"]["trimmed_mean_ms"]
            r = rtbench.run(runtimes=rt, precision=prec, sizes=[size], batches=[batch], device="cuda", out=res,
                            report=False)
            worker = float(r.to_pandas().iloc[0].trimmed_mean_ms)
            lines.append(f"| {rt} {prec} {size} b{batch} | {rnd} | {plain:.4f} | {inproc:.4f} | {worker:.4f} |")
            print(lines[-1], flush=True)
        m.close()
    (out / "launch_bound_check.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
