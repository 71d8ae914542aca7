"""Which of torch.compile's modules can the workers' fork server import without initialising CUDA?

A worker forked from a server that initialised CUDA cannot use the GPU ("Cannot re-initialize CUDA in forked
subprocess"). For each candidate, a fresh interpreter imports torch and rtbench's worker (what the fork server
preloads today), then the candidate's modules, and says how long that took, whether CUDA is initialised, which
call initialised it, and whether a forked child can then put a tensor on the GPU and run a compiled function.

    PYTHONPATH=src python benchmarks/fork_preload_probe.py [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CANDIDATES = {
    "dynamo": ["torch._dynamo"],
    "compile_fx": ["torch._dynamo", "torch._inductor.compile_fx"],
    "compile_fx+triton": ["torch._dynamo", "torch._inductor.compile_fx", "triton", "triton.compiler"],
    "compile_fx+nvml-check": ["torch._dynamo", "torch._inductor.compile_fx"],
}

PROBE = r"""
import json, os, sys, time, traceback
t0 = time.perf_counter()
import torch, torchvision
import rtbench.worker
base_s = time.perf_counter() - t0
import torch.cuda
first = []
orig = torch.cuda._lazy_init
def spy(*a, **k):
    if not first:
        first.append("".join(traceback.format_stack(limit=14)[:-1]))
    return orig(*a, **k)
torch.cuda._lazy_init = spy
t0 = time.perf_counter()
for m in sys.argv[1].split(","):
    __import__(m)
mods_s = time.perf_counter() - t0
out = {"base_import_s": base_s, "modules_s": mods_s, "cuda_initialized": torch.cuda.is_initialized(),
       "first_lazy_init": first[0] if first else None}
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        t = time.perf_counter()
        x = torch.ones(8, device="cuda")
        f = torch.compile(lambda a: (a * 2).relu().sum())
        v = float(f(x))
        msg = {"child": "ok", "value": v, "child_compile_s": time.perf_counter() - t}
    except Exception as e:
        msg = {"child": "failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    os.write(w, json.dumps(msg).encode())
    os._exit(0)
os.close(w)
data = b""
while chunk := os.read(r, 65536):
    data += chunk
os.waitpid(pid, 0)
out.update(json.loads(data or b'{"child": "no answer"}'))
print("PROBE " + json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    results = {}
    for name, mods in CANDIDATES.items():
        env = {**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"} if name.endswith("nvml-check") else None
        p = subprocess.run([sys.executable, "-c", PROBE, ",".join(mods)], capture_output=True, text=True,
                           timeout=600, env=env)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("PROBE ")), None)
        results[name] = json.loads(line[6:]) if line else {"error": (p.stderr or p.stdout)[-800:]}
    lines = ["# Fork-server preload probe", "",
             f"Written by `python benchmarks/fork_preload_probe.py` ({sys.version.split()[0]}).", "",
             "| preload | base import (s) | modules (s) | CUDA initialised | forked child | child compile (s) |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r.get('base_import_s', float('nan')):.2f} | {r.get('modules_s', float('nan')):.2f} "
                     f"| {r.get('cuda_initialized')} | {r.get('child', r.get('error', '?'))} {r.get('error', '')} "
                     f"| {r.get('child_compile_s', float('nan')):.2f} |")
    for name, r in results.items():
        if r.get("first_lazy_init"):
            lines += ["", f"## What initialised CUDA with `{name}`", "", "```", r["first_lazy_init"].rstrip(), "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "fork-preload-probe.md").write_text(text)
        (a.out / "fork-preload-probe.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
