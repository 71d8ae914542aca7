"""Where a GPU run's fixed costs go: imports, CUDA initialisation, contexts created side by side, NVML calls.

    python benchmarks/startup_profile.py --out DIR [--contexts 6]

Each step runs in a fresh interpreter (nothing cached in the process; the OS file cache is what it is). Figures:
- one interpreter's timeline: `import rtbench.cli` (what `rtbench` loads before it starts), `import torch`,
  `torch.cuda.is_available()`, `import torchvision`, the first CUDA tensor (the context), `torch._dynamo`,
  `torch._inductor.compile_fx`, `onnxruntime` (when installed);
- N interpreters that have imported torch creating their CUDA contexts at the same moment (a run's workers do);
- the NVML queries a telemetry window makes at its start and end (rtbench.telemetry.Sampler), per call;
- `make_sweep()` of the default run under cProfile (what the run's own process does before any worker starts).
Writes DIR/startup-profile.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from rtbench.child import torch_bytecode  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}

TIMELINE = r"""
import importlib.util, json, time
t = time.perf_counter(); out = {}
def step(name):
    global t
    now = time.perf_counter(); out[name] = now - t; t = now
import rtbench.cli; step("import rtbench.cli")
import torch; step("import torch")
torch.cuda.is_available(); step("torch.cuda.is_available()")
import torchvision; step("import torchvision")
torch.zeros(1, device="cuda"); torch.cuda.synchronize(); step("first CUDA tensor (context)")
import torch._dynamo; step("import torch._dynamo")
import torch._inductor.compile_fx; step("import torch._inductor.compile_fx")
if importlib.util.find_spec("onnxruntime"):
    import onnxruntime; step("import onnxruntime")
print(json.dumps(out))
"""

CONTEXT = r"""
import json, os, sys, time
import torch
open(sys.argv[1] + f".{os.getpid()}", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
t = time.perf_counter(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
print(json.dumps({"context_s": time.perf_counter() - t}))
"""

NVML = r"""
import json, time
from rtbench import telemetry
nvml, why = telemetry.load_nvml()
h = telemetry.device_handle(nvml, "cuda:0")
s = telemetry.Sampler("cuda:0")
calls = {"compute_processes": lambda: telemetry.compute_processes(nvml, h),
         "total energy": lambda: telemetry.query(nvml.nvmlDeviceGetTotalEnergyConsumption, h),
         "sample (6 queries)": s.sample, "window start+stop": lambda: (s.start(), s.stop())}
out = {}
for name, fn in calls.items():
    fn(); ts = []
    for _ in range(50):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    ts.sort(); out[name] = {"median_ms": ts[25] * 1e3, "max_ms": ts[-1] * 1e3}
print(json.dumps(out))
"""

PROFILE = r"""
import cProfile, io, pstats
from rtbench import api
pr = cProfile.Profile(); pr.enable()
api.make_sweep(load_model=False)
pr.disable()
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
print(s.getvalue())
"""


WORKER = r"""
import cProfile, io, os, pstats, sys, tempfile, time
t = time.perf_counter()
import rtbench.worker as w  # what the fork server preloads
from rtbench.api import make_sweep
pre = time.perf_counter() - t
sweep = make_sweep(runtimes=sys.argv[1], sizes="224", batches="1", device=sys.argv[3])
d = tempfile.mkdtemp()
job = {"sweep": sweep.to_dict(), "runtime": sys.argv[1], "precision": "fp32", "workdir": sys.argv[2],
       "refs_dir": d, "plugins": None, "run_pid": os.getpid()}
pr = cProfile.Profile(); pr.enable()
t = time.perf_counter(); m, info, group = w.start_group(job); setup = time.perf_counter() - t
t = time.perf_counter(); out = m.prepare(sweep.cells()[0]); prep = time.perf_counter() - t
pr.disable()
print(f"preload {pre:.2f} s, start_group {setup:.2f} s {info['setup_parts']}, first prepare {prep:.2f} s "
      f"({out.status}), cell set-up {out.parts.get('setup')}")
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(30)
print(s.getvalue())
m.close()
"""


def py(code: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return r.stdout


def contexts(n: int) -> list[float]:
    """n interpreters import torch, then all create their CUDA context at once; each one's seconds."""
    with tempfile.TemporaryDirectory() as d:
        ready, go = os.path.join(d, "ready"), os.path.join(d, "go")
        procs = [subprocess.Popen([sys.executable, "-c", CONTEXT, ready, go], stdout=subprocess.PIPE, text=True,
                                  env=ENV) for _ in range(n)]
        while len([f for f in os.listdir(d) if f.startswith("ready.")]) < n:
            time.sleep(0.01)
        open(go, "w").close()
        return sorted(json.loads(p.communicate()[0])["context_s"] for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--contexts", type=int, default=6)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Fixed costs of a GPU run", "",
             f"- **Date:** {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- **Command:** `python benchmarks/startup_profile.py --out DIR --contexts {a.contexts}`",
             f"- **Bytecode:** PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE')!r}, torch's "
             f"compiled beside its sources: {torch_bytecode().exists()}",
             f"- **Machine:** {os.cpu_count()} cores; "
             + subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True).stdout.strip(), ""]
    for run in (1, 2):
        lines += [f"## One interpreter, run {run} (seconds per step)", "", "| step | s |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in json.loads(py(TIMELINE).splitlines()[-1]).items()]
        lines.append("")
    for n in (1, a.contexts):
        ts = contexts(n)
        lines += [f"## {n} CUDA context(s) created at once", "",
                  "seconds per process, sorted: " + ", ".join(f"{t:.2f}" for t in ts), ""]
    lines += ["## NVML calls (50 each)", "", "| call | median ms | max ms |", "|---|---|---|"]
    lines += [f"| {k} | {v['median_ms']:.3f} | {v['max_ms']:.3f} |"
              for k, v in json.loads(py(NVML).splitlines()[-1]).items()]
    with tempfile.TemporaryDirectory() as work:
        for rt in ("torch", "onnxruntime", "torch-compile"):
            lines += [f"## A `{rt}` worker alone: set-up and its first cell (224 px, batch 1) under cProfile", "",
                      "```", py(WORKER, rt, work, "cuda").strip(), "```", ""]
    lines += ["", "## `make_sweep()` of the default run under cProfile", "", "```", py(PROFILE).strip(), "```", ""]
    (out / "startup-profile.md").write_text("\n".join(lines))
    print("\n".join(lines[:60]))


if __name__ == "__main__":
    main()
