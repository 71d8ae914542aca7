"""ONNX Runtime on a CPU: one intra-op thread pool per session against one pool shared by the process's sessions.

rtbench gives each cell (and, under load, each batch bucket) a session of its own. With a pool per session, the
threads of the session just called keep spinning while the next session's threads start, and on a small CPU they
fight for the cores. This script measures it the way rtbench's executor calls sessions: ResNet18 (random
weights) exported once per batch size, one session per batch size, then

- each session called back to back (the closed loop of `rtbench run`),
- the sessions called in a seeded random order (80% batch 1, 15% batch 2, 5% batch 4, as a load test's buckets
  at a low rate), back to back and with 5 ms of busy-waiting between calls (the executor's wait),

with per-session pools (ONNX Runtime's default), with spinning turned off, and with one shared pool
(`set_global_thread_pool_sizes` + `use_per_session_threads = False`, what rtbench does on a CPU). Each mode runs
in a process of its own (the shared pool is process-wide), twice, in the order the modes are listed.

    .venv/bin/python benchmarks/ort_thread_pools.py [--out benchmarks/results/ort-thread-pools-cpu.md]
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import time

MODES = ("per-session", "no-spinning", "shared")
BATCHES = (1, 2, 4)
SIZE = 64
CALLS = 200


def measure(mode: str, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision

    if mode == "shared":
        ort.set_global_thread_pool_sizes(threads, 1)
    model = torchvision.models.resnet18().eval()
    sessions = {}
    for b in BATCHES:
        f = io.BytesIO()
        torch.onnx.export(model, torch.randn(b, 3, SIZE, SIZE), f, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        if mode == "no-spinning":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if mode == "shared":
            opts.use_per_session_threads = False
        s = ort.InferenceSession(f.getvalue(), opts, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: np.random.default_rng(b).standard_normal((b, 3, SIZE, SIZE), np.float32)}
        sessions[b] = (s, feed)
        for _ in range(20):
            s.run(None, feed)

    def run(order: list[int], gap_s: float) -> dict:
        times: dict[int, list[float]] = {b: [] for b in BATCHES}
        for b in order:
            if gap_s:
                end = time.perf_counter() + gap_s
                while time.perf_counter() < end:
                    pass
            s, feed = sessions[b]
            t0 = time.perf_counter()
            s.run(None, feed)
            times[b].append((time.perf_counter() - t0) * 1e3)
        return {b: round(float(np.median(v)), 3) for b, v in times.items() if v}

    rng = np.random.default_rng(0)
    mixed = [int(b) for b in rng.choice(BATCHES, size=3 * CALLS, p=[0.8, 0.15, 0.05])]
    return {"closed": {b: run([b] * CALLS, 0.0)[b] for b in BATCHES}, "mixed, back to back": run(mixed, 0.0),
            "mixed, 5 ms apart": run(mixed, 0.005)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/ort-thread-pools-cpu.md")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.child, a.threads)))
        return
    rows = []
    for rep in range(1, a.repeats + 1):
        for mode in MODES:
            r = subprocess.run([sys.executable, __file__, "--child", mode, "--threads", str(a.threads)],
                               capture_output=True, text=True, check=True)
            got = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((rep, mode, got))
            print(rep, mode, got, flush=True)
    import onnxruntime

    lines = ["# ONNX Runtime on a CPU: a thread pool per session, or one shared by the process's sessions",
             "",
             f"Written by `{' '.join([os.path.relpath(sys.executable), *sys.argv])}` on "
             f"{datetime.date.today().isoformat()}: {platform.processor() or platform.machine()}, "
             f"{len(os.sched_getaffinity(0))} usable cores, {a.threads} intra-op threads, onnxruntime "
             f"{onnxruntime.__version__}; ResNet18 (random weights) at {SIZE} px, one session per batch size. "
             f"Median ms per call; each mode in a fresh process, the whole set {a.repeats} times.",
             "",
             "| run | mode | closed b1 | closed b2 | closed b4 | mixed b1 | mixed b2 | mixed b4 | "
             "mixed 5 ms apart b1 | b2 | b4 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rep, mode, got in rows:
        cells = [got[k].get(str(b)) for k in ("closed", "mixed, back to back", "mixed, 5 ms apart") for b in BATCHES]
        lines.append(f"| {rep} | {mode} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
