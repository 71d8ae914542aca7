"""Where a torch.compile worker's first cell goes when inductor's caches already hold the shape.

On the H200 a torch-compile worker's first cell took 5-6 s in its session (a cache hit) and the others 1.3-3 s
(benchmarks/results/h200-2026-12-02d). This runs rtbench's own torch-compile runtime alone, in fresh processes
that share one cache folder: the first fills the caches, the next ones build a session for one shape and then
for a second shape under cProfile, and print where the time went (cumulative seconds of the top calls).

    PYTHONPATH=src python benchmarks/compile_hit_profile.py [--device cuda] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import cProfile, io, os, pstats, sys, time
from pathlib import Path
os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
t0 = time.perf_counter()
import rtbench.worker, torch._inductor.compile_fx
from rtbench.worker import use_compile_caches
from rtbench.measurer import GroupMeasurer
from rtbench.spec import Sweep
from rtbench.runtimes.common import make_input, sync
imports = time.perf_counter() - t0
work, device, profile = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
use_compile_caches(work)
sweep = Sweep(runtimes=("torch-compile",), sizes=(224, 256), batches=(1,), device=device)
g = GroupMeasurer(sweep, "torch-compile", "fp32", work)
t0 = time.perf_counter()
assert g.setup() is None
setup = time.perf_counter() - t0
out = [f"imports {imports:.2f} s, group set-up {setup:.2f} s"]
for cell in sweep.cells():
    x = make_input(cell.batch, cell.size, 3)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof: prof.enable()
    s = g.runtime.session(cell, x)
    s.call(); sync(cell.device)
    if prof: prof.disable()
    out.append(f"{cell.size}px b{cell.batch}: session + first call {time.perf_counter() - t0:.2f} s, "
               f"{s.info.get('compile_cache')}")
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
        out.append(buf.getvalue())
    s.close()
print("\n".join(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    texts = []
    with tempfile.TemporaryDirectory() as work:
        for i, profile in enumerate(("0", "0", "1")):  # fill the caches, a plain hit, a profiled hit
            p = subprocess.run([sys.executable, "-c", CHILD, work, a.device, profile], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": src})
            texts.append(f"## process {i + 1} ({'fills the caches' if i == 0 else 'cache hit'}"
                         f"{', profiled' if profile == '1' else ''})\n\n```\n{(p.stdout or p.stderr)[-12000:]}\n```\n")
    text = ("# torch.compile's first cell from a warm cache\n\nWritten by `python benchmarks/compile_hit_profile.py "
            f"--device {a.device}`.\n\n" + "\n".join(texts))
    print(text)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "compile-hit-profile.md").write_text(text)


if __name__ == "__main__":
    main()
