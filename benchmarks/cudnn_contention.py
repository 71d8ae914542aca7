"""Does cuDNN's autotuner (``torch.backends.cudnn.benchmark``) pick slower kernels when another process keeps the
GPU busy during a model's first call? A question for rtbench, which prepares several workers at once.

    python benchmarks/cudnn_contention.py [--reps 3] [--out FILE.md]

For each case (ResNet18 eager at 224 px: a precision, memory format and batch) and each repetition, a fresh
process builds the model with ``cudnn.benchmark = True`` and makes its first call (where cuDNN times its
algorithms) either **alone** or while a second process runs large fp16 matmuls on the same GPU (**contended**);
then, alone again, it times 30 calls (after 10 untimed) and reports the median. If contention during the
first call changes the kernels chosen, the contended medians differ from the alone ones. Writes FILE.md with
date, machine, command and every figure (default: print only).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

CASES = [("bf16", False, 1024), ("fp16", True, 256)]

HAMMER = """
import time, torch, pathlib
a = torch.randn(8192, 8192, device='cuda', dtype=torch.float16)
stop = pathlib.Path({stop!r})
print('ready', flush=True)
while not stop.exists():
    for _ in range(20):
        a @ a
    torch.cuda.synchronize()
"""

MEASURE = """
import json, time, torch, torchvision
prec, cl, batch = {prec!r}, {cl!r}, {batch!r}
dtype = {{'fp16': torch.float16, 'bf16': torch.bfloat16}}[prec]
torch.backends.cudnn.benchmark = True
m = torchvision.models.resnet18().eval().to('cuda', dtype)
x = torch.randn(batch, 3, 224, 224, device='cuda', dtype=dtype)
if cl:
    m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
torch.cuda.synchronize()
input()  # the parent says when (after starting the other process, or not)
with torch.inference_mode():
    t0 = time.perf_counter(); m(x); torch.cuda.synchronize(); first = time.perf_counter() - t0
    print('first', flush=True)
    input()  # the other process has stopped
    for _ in range(10):
        m(x)
    torch.cuda.synchronize()
    ms = []
    for _ in range(30):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); m(x); e.record(); e.synchronize(); ms.append(s.elapsed_time(e))
print(json.dumps({{'first_s': first, 'ms': sorted(ms)[len(ms) // 2]}}), flush=True)
"""


def one(case, contended: bool, tmp: Path) -> dict:
    prec, cl, batch = case
    p = subprocess.Popen([sys.executable, "-c", MEASURE.format(prec=prec, cl=cl, batch=batch)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    hammer = None
    stop = tmp / f"stop-{time.monotonic_ns()}"
    if contended:
        hammer = subprocess.Popen([sys.executable, "-c", HAMMER.format(stop=str(stop))], stdout=subprocess.PIPE, text=True)
        assert hammer.stdout.readline().strip() == "ready"
        time.sleep(0.5)
    p.stdin.write("\n"); p.stdin.flush()
    assert p.stdout.readline().strip() == "first"
    if hammer:
        stop.touch()
        hammer.wait()
    p.stdin.write("\n"); p.stdin.flush()
    out = json.loads(p.stdout.readline())
    p.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0)
    tmp = Path("/tmp")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = []
    for case in CASES:
        for rep in range(a.reps):
            for contended in (False, True):
                r = one(case, contended, tmp)
                rows.append((case, rep, contended, r))
                print(case, rep, "contended" if contended else "alone", f"{r['ms']:.3f} ms", flush=True)
    lines = ["# cuDNN autotuning alone and under contention", "", f"- **Date:** {started}",
             f"- **Machine:** {gpu}, {platform.node()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}",
             f"- **Command:** `python benchmarks/cudnn_contention.py --reps {a.reps}`", "",
             "| case | first call | median ms of 30 calls, each repetition a fresh process | spread (max/min) |",
             "|---|---|---|---|"]
    for case in CASES:
        for contended in (False, True):
            ms = [r["ms"] for c, _rep, k, r in rows if c == case and k == contended]
            prec, cl, batch = case
            lines.append(f"| resnet18 {prec} {'channels_last' if cl else 'NCHW'} b{batch} | "
                         f"{'contended' if contended else 'alone'} | {', '.join(f'{m:.3f}' for m in ms)} | "
                         f"x{max(ms) / min(ms):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
