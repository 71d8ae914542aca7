"""The seed grid on a CUDA GPU, plus an independent CUDA-event loop to check rtbench's numbers.

    PYTHONPATH=src python3 benchmarks/gpu_seed.py --out $OUT [--compile-mode default] [--skip-fp16]

1. fp32 grid (224/256/384/512 x 1/4/8/16) with torch, onnxruntime (CUDA, IO binding) and torch-compile;
2. fp16 grid with torch, onnxruntime and torch-compile;
3. a plain CUDA-event loop, written here without rtbench's timing code, times a few of the same cells;
   rtbench's trimmed means must agree within 2%.
Writes <out>/summary.md (and each run's report.md and the store under <out>/results).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy import stats as sps

import rtbench
from rtbench.runtimes.base import get as get_runtime
from rtbench.runtimes.common import make_input


def plain_event_loop(fn, warmup: int = 50, iters: int = 300) -> float:
    """Independent reference: CUDA events around each call on the current stream, 10% trimmed mean (ms)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return float(sps.trim_mean(times, 0.1))


def reference_cells(onnx_fp32: Path) -> dict:
    """torch fp16 224 b16, torch fp32 224 b1, ONNX Runtime fp32 224 b16, timed by the plain loop."""
    import onnxruntime as ort

    torch.manual_seed(0)
    import torchvision

    base = torchvision.models.resnet18().eval()
    out = {}
    for prec, batch in (("fp16", 16), ("fp32", 1)):
        dtype = torch.float16 if prec == "fp16" else torch.float32
        m = copy.deepcopy(base).to("cuda", dtype).to(memory_format=torch.channels_last)
        x = make_input(batch, 224).to("cuda", dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out[("torch", prec, 224, batch)] = plain_event_loop(lambda: m(x))
    so = ort.SessionOptions()
    stream = torch.cuda.current_stream()
    sess = ort.InferenceSession(str(onnx_fp32), so, providers=[("CUDAExecutionProvider", {
        "use_tf32": "0", "has_user_compute_stream": "1", "user_compute_stream": str(stream.cuda_stream)})])
    x = make_input(16, 224).cuda()
    y = torch.empty(16, 1000, device="cuda")
    b = sess.io_binding()
    b.bind_input("input", "cuda", 0, np.float32, list(x.shape), x.data_ptr())
    b.bind_output("output", "cuda", 0, np.float32, list(y.shape), y.data_ptr())
    out[("onnxruntime", "fp32", 224, 16)] = plain_event_loop(lambda: sess.run_with_iobinding(b))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    ap.add_argument("--skip-fp16", action="store_true")
    ap.add_argument("--runtimes", default="torch,onnxruntime,torch-compile")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_seed.py needs a CUDA GPU")
    out = Path(a.out)
    res_dir = out / "results"
    lines = [f"# rtbench on {torch.cuda.get_device_name(0)} — seed grid", "",
             f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- command: `PYTHONPATH=src python3 benchmarks/gpu_seed.py {' '.join(sys.argv[1:])}`",
             f"- python {platform.python_version()}, torch {torch.__version__}, "
             f"onnxruntime {get_runtime('onnxruntime').version()}, rtbench {rtbench.__version__}", ""]
    runs = {}
    for prec in ("fp32",) + (() if a.skip_fp16 else ("fp16",)):
        t0 = time.perf_counter()
        r = rtbench.run(runtimes=a.runtimes, precision=prec, device="cuda", out=res_dir,
                        options={"compile_mode": a.compile_mode})
        wall = time.perf_counter() - t0
        df = r.to_pandas()
        runs[prec] = (r, df)
        ok = df[df.status.isin(["ok", "mismatch"])]
        setup = df.setup_s.fillna(0).sum() + df.first_call_ms.fillna(0).sum() / 1e3
        timed = (df.get("warmup_s", 0).fillna(0) + df.get("timed_s", 0).fillna(0)).sum()
        lines += [f"## {prec}: run `{r.id}`", "",
                  f"- wall time of the whole sweep: {wall:.1f} s; setup (export, session, compile, first calls): "
                  f"{setup:.1f} s; warm-up + timed loops: {timed:.1f} s; sweep without setup: {wall - setup:.1f} s",
                  f"- cells: {df.status.value_counts().to_dict()}",
                  f"- CI half-width / trimmed mean: max {100 * ok.ci_rel_halfwidth.max():.2f}%, "
                  f"median {100 * ok.ci_rel_halfwidth.median():.2f}%; cells over 1%: "
                  f"{int((ok.ci_rel_halfwidth > 0.01).sum())}; capped cells: {int(ok.capped.sum())}",
                  f"- compile/first-call seconds per torch-compile cell: "
                  f"{', '.join(f'{v / 1e3:.1f}' for v in df[df.runtime == 'torch-compile'].first_call_ms.dropna())}",
                  ""]
        shutil.copy(r.report_dir / "report.md", out / f"report-{prec}.md")
    # 3. independent check
    onnx = next((res_dir / "cache").glob("resnet18-*-fp32.onnx"))
    ref = reference_cells(onnx)
    lines += ["## Independent CUDA-event loop vs rtbench (10% trimmed means, ms)", "",
              "| cell | plain loop | rtbench | difference |", "|---|---|---|---|"]
    for (rt, prec, size, batch), ms in ref.items():
        if prec not in runs:
            continue
        df = runs[prec][1]
        row = df[(df.runtime == rt) & (df["size"] == size) & (df.batch == batch)]
        if row.empty or row.iloc[0].status not in ("ok", "mismatch"):
            continue
        ours = float(row.iloc[0].trimmed_mean_ms)
        lines.append(f"| {rt} {prec} {size} b{batch} | {ms:.4f} | {ours:.4f} | {100 * (ours - ms) / ms:+.2f}% |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    shutil.copy(res_dir / "rtbench.sqlite", out / "rtbench.sqlite")
    print(text)
    print(json.dumps({p: r.id for p, (r, _) in runs.items()}))


if __name__ == "__main__":
    main()
