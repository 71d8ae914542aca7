"""The cost of process isolation per runtime group, on this machine.

For each runtime group a worker is started the way the engine starts it, and we record:
  start_s  process start + imports until the worker runs (what isolation adds; never in any timing),
  setup_s  the group's setup inside the worker (model build, runtime import and construction), which
           an in-process engine also pays, once per run instead of once per group.
The first worker of a run also starts the fork server (imports torch/torchvision/rtbench once).
For comparison: a plain fresh interpreter importing the same modules (what a worker without the fork
server would pay per group). Usage: PYTHONPATH=src python benchmarks/isolation_bench.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtbench.spec import Sweep, TimingPolicy
from rtbench.worker import Worker


def fresh_interpreter_import_s(repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import rtbench.worker"], check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runtimes", default="null,torch,onnxruntime")
    args = ap.parse_args()
    sweep = Sweep(model="resnet18", runtimes=tuple(args.runtimes.split(",")), sizes=(32,), batches=(1,),
                  device="cpu", policy=TimingPolicy())
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for i in range(args.repeat):
            for rt in sweep.runtimes:
                w = Worker(sweep, rt, "fp32", Path(work), timeout=600)
                rows.append({"runtime": rt, "round": i, "start_s": w.start_s,
                             "setup_s": w.setup_s, "status": w.group_outcome.status if w.group_outcome else "ready"})
                w.close()
    fresh = fresh_interpreter_import_s(args.repeat)
    print(json.dumps({"workers": rows, "fresh_interpreter_import_s": fresh}, indent=1))


if __name__ == "__main__":
    main()
