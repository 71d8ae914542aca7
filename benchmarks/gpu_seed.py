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


def plain_event_loop(fn, warmup_s: float = 1.0, iters: int = 2000) -> float:
    """Independent reference: CUDA events around each call on the current stream, 10% trimmed mean (ms)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
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


def plain_callables(onnx_fp32: Path | None) -> dict:
    """Cells timed without rtbench's code: torch fp16/fp32 eager (channels_last, cuDNN autotuner as rtbench
    sets it) and ONNX Runtime fp32 CUDA with IO binding on torch's stream."""
    import torchvision

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    base = torchvision.models.resnet18().eval()
    fns = {}
    for prec, batch in (("fp16", 16), ("fp32", 1), ("fp32", 16)):
        dtype = torch.float16 if prec == "fp16" else torch.float32
        m = copy.deepcopy(base).to("cuda", dtype).to(memory_format=torch.channels_last)
        x = make_input(batch, 224).to("cuda", dtype).contiguous(memory_format=torch.channels_last)

        def fn(m=m, x=x):
            with torch.inference_mode():
                m(x)
        fns[("torch", prec, 224, batch)] = fn
    if onnx_fp32 is None:
        return fns
    import onnxruntime as ort

    stream = torch.cuda.current_stream()
    sess = ort.InferenceSession(str(onnx_fp32), ort.SessionOptions(), providers=[("CUDAExecutionProvider", {
        "use_tf32": "0", "has_user_compute_stream": "1", "user_compute_stream": str(stream.cuda_stream)})])
    x = make_input(16, 224).cuda()
    y = torch.empty(16, 1000, device="cuda")
    b = sess.io_binding()
    b.bind_input("input", "cuda", 0, np.float32, list(x.shape), x.data_ptr())
    b.bind_output("output", "cuda", 0, np.float32, list(y.shape), y.data_ptr())
    fns[("onnxruntime", "fp32", 224, 16)] = lambda: sess.run_with_iobinding(b)
    fns["_keep"] = (x, y, sess, b)  # the bound tensors must outlive the binding
    return fns


def cross_check(res_dir: Path, onnx_fp32: Path, precisions) -> list[str]:
    """Plain loop, then rtbench on the same cell, then the plain loop again (drift shows as a gap between the two)."""
    fns = plain_callables(onnx_fp32)
    lines = ["| cell | plain loop before | rtbench | plain loop after | rtbench vs mean of plain |",
             "|---|---|---|---|---|"]
    for key, fn in fns.items():
        if key == "_keep" or key[1] not in precisions:
            continue
        rt, prec, size, batch = key
        before = plain_event_loop(fn)
        r = rtbench.run(runtimes=rt, precision=prec, sizes=[size], batches=[batch], device="cuda", out=res_dir,
                        report=False)
        ours = float(r.to_pandas().iloc[0].trimmed_mean_ms)
        after = plain_event_loop(fn)
        ref = (before + after) / 2
        lines.append(f"| {rt} {prec} {size} b{batch} | {before:.4f} | {ours:.4f} | {after:.4f} | "
                     f"{100 * (ours - ref) / ref:+.2f}% |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    ap.add_argument("--skip-fp16", action="store_true")
    ap.add_argument("--runtimes", default="torch,onnxruntime,torch-compile")
    ap.add_argument("--cross-check-only", action="store_true", help="only step 3 (fp32 and fp16 cells)")
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
    for prec in () if a.cross_check_only else ("fp32",) + (() if a.skip_fp16 else ("fp16",)):
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
        (out / "summary.md").write_text("\n".join(lines) + "\n")  # partial results survive a time-out
    # 3. independent check
    from rtbench.models import resolve
    from rtbench.runtimes.common import onnx_export

    onnx, _ = onnx_export(resolve("resnet18"), res_dir, "fp32")  # the export rtbench uses (cached)
    checked = ("fp32", "fp16") if a.cross_check_only else tuple(runs)
    lines += ["## Independent CUDA-event loop vs rtbench (10% trimmed means, ms)", "",
              *cross_check(res_dir, onnx, checked), ""]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    shutil.copy(res_dir / "rtbench.sqlite", out / "rtbench.sqlite")
    print(text)
    print(json.dumps({p: r.id for p, (r, _) in runs.items()}))


if __name__ == "__main__":
    main()
