"""The seed grid on a CUDA GPU, plus an independent CUDA-event loop to check rtbench's numbers.

    PYTHONPATH=src python3 benchmarks/gpu_seed.py --out $OUT [--compile-mode default] [--skip-fp16]

1. fp32 grid (224/256/384/512 x 1/4/8/16) with torch, onnxruntime (CUDA, IO binding) and torch-compile;
2. a plain CUDA-event loop, written here without rtbench's timing code and run in a process of its own,
   times a few of the same cells, taking turns with rtbench's worker; rtbench's trimmed means must agree
   within 2%;
3. the fp16 grid with torch, onnxruntime and torch-compile.
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


def plain_event_loop(fn, warmup_s: float = 0.3, seconds: float = 1.0) -> float:
    """Independent reference: CUDA events around each call on the current stream, 10% trimmed mean (ms)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(times) < 50:
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return float(sps.trim_mean(times, 0.1))


CHECKED = (("torch", "fp16", 224, 16), ("onnxruntime", "fp32", 224, 16), ("torch", "fp32", 224, 16),
           ("torch", "fp32", 224, 1))


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


def plain_server(conn, onnx_fp32: str | None, window: float) -> None:
    """A process of its own for the plain loop, as small as rtbench's worker: callables built once, then one
    plain_event_loop per key received."""
    fns = plain_callables(Path(onnx_fp32) if onnx_fp32 else None)
    while (key := conn.recv()) is not None:
        conn.send(plain_event_loop(fns[key], seconds=window or 1.0))


def cross_check(res_dir: Path, onnx_fp32: Path | None, rounds: int = 7, window: float | None = None,
                cells=CHECKED) -> list[str]:
    """The plain loop (its own process) and rtbench (its worker process, its timing loop and statistics, exactly
    as in a run) take turns on the same cell, ``rounds`` times, the order swapped every round so that drift of
    the machine falls on both alike. Compared: the median over rounds of each one's trimmed mean.

    rtbench uses the default GPU policy, or with ``window`` a fixed one: 0.3 s warm-up and ``window`` seconds
    timed, the same as the plain loop (launch-bound cells speed up or slow down over seconds on some hosts,
    so loops of different lengths see different machines)."""
    import multiprocessing

    from rtbench.spec import TimingPolicy
    from rtbench.worker import Worker

    policy = None if window is None else TimingPolicy(
        warmup_min_calls=1, warmup_min_s=0.3, warmup_max_s=0.3, min_calls=50, min_time_s=window, max_time_s=window,
        ci_target=1e-9)
    ctx = multiprocessing.get_context("spawn")
    conn, child = ctx.Pipe()
    server = ctx.Process(target=plain_server, args=(child, onnx_fp32 and str(onnx_fp32), window), daemon=True)
    server.start()
    lines = ["| cell | rounds | plain loop: median (min-max) | rtbench: median (min-max) | rtbench vs plain | "
             "per-round ratio rtbench/plain: median [95% CI] (min-max) |", "|---|---|---|---|---|---|"]
    for key in cells:
        rt, prec, size, batch = key
        if rt == "onnxruntime" and onnx_fp32 is None:
            continue
        sweep = rtbench.api.make_sweep(runtimes=rt, precision=prec, sizes=[size], batches=[batch], device="cuda",
                                       policy=policy)
        cell = sweep.cells()[0]
        worker = Worker(sweep, rt, prec, res_dir, 600.0)
        plain, ours = [], []

        def by_plain():
            conn.send(key)
            plain.append(conn.recv())

        def by_rtbench():
            out = worker.measure(cell, 600.0)
            if out.status != "ok":
                raise SystemExit(f"rtbench {key}: {out.status} {out.reason}")
            ours.append(out.parts["stats"]["trimmed_mean_ms"])

        try:
            for i in range(rounds):
                for step in (by_plain, by_rtbench) if i % 2 == 0 else (by_rtbench, by_plain):
                    step()
        finally:
            worker.close()
        p, o = np.median(plain), np.median(ours)
        ratio = np.array(ours) / np.array(plain)
        meds = np.median(ratio[np.random.default_rng(0).integers(0, len(ratio), (5000, len(ratio)))], axis=1)
        lo, hi = np.percentile(meds, [2.5, 97.5])  # percentile bootstrap of the median ratio
        lines.append(f"| {rt} {prec} {size} b{batch} | {rounds} | {p:.4f} ({min(plain):.4f}-{max(plain):.4f}) | "
                     f"{o:.4f} ({min(ours):.4f}-{max(ours):.4f}) | {100 * (o / p - 1):+.2f}% | "
                     f"{np.median(ratio):.4f} [{lo:.4f}-{hi:.4f}] ({ratio.min():.4f}-{ratio.max():.4f}) |")
        print(lines[-1], flush=True)
    conn.send(None)
    server.join(30)
    return lines


def per_cell_info(r) -> dict:
    """The harness's per-cell figures stored in each cell's info (parity check, statistics, parent's view)."""
    keys = ("parity_s", "stats_s", "cell_wall_s", "worker_start_s")
    return {k: [c["info"][k] for c in r.cells if k in c["info"]] for k in keys
            if any(k in c["info"] for c in r.cells)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    ap.add_argument("--skip-fp16", action="store_true")
    ap.add_argument("--runtimes", default="torch,onnxruntime,torch-compile")
    ap.add_argument("--cross-check-only", action="store_true", help="only the check against the plain loop")
    ap.add_argument("--rounds", type=int, default=7, help="turns of the plain loop and rtbench per checked cell")
    ap.add_argument("--window", type=float, help="fixed timed seconds for both in the check (default: rtbench's "
                                                     "GPU policy for rtbench, 1 s for the plain loop)")
    ap.add_argument("--no-onnxruntime", action="store_true", help="check the torch cells only")
    ap.add_argument("--cells", help="cells to check, e.g. torch:fp16:224:16,torch:fp32:224:1 (default: all four)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_seed.py needs a CUDA GPU")
    out = Path(a.out)
    res_dir = out / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# rtbench on {torch.cuda.get_device_name(0)} — seed grid", "",
             f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- command: `PYTHONPATH=src python3 benchmarks/gpu_seed.py {' '.join(sys.argv[1:])}`",
             f"- python {platform.python_version()}, torch {torch.__version__}, "
             f"onnxruntime {get_runtime('onnxruntime').version()}, rtbench {rtbench.__version__}", ""]
    cells = CHECKED if not a.cells else [(r, p, int(s), int(b)) for r, p, s, b in
                                         (c.split(":") for c in a.cells.split(","))]
    runs = {}
    steps = [] if a.cross_check_only else ["fp32"]
    steps += ["check"] + ([] if a.cross_check_only or a.skip_fp16 else ["fp16"])
    for step in steps:
        if step == "check":  # 3. independent check, between the two grids
            from rtbench.models import resolve
            from rtbench.runtimes.common import onnx_export

            onnx = None if a.no_onnxruntime else onnx_export(resolve("resnet18"), res_dir, "fp32")[0]  # rtbench's, cached
            how = f"both timed {a.window:g} s after 0.3 s of warm-up" if a.window else "rtbench's default GPU policy"
            lines += [f"## Independent CUDA-event loop vs rtbench (10% trimmed means, ms; {how})", "",
                      *cross_check(res_dir, onnx, a.rounds, a.window, cells), ""]
        else:
            t0 = time.perf_counter()
            r = rtbench.run(runtimes=a.runtimes, precision=step, device="cuda", out=res_dir,
                            options={"compile_mode": a.compile_mode})
            runs[step] = r
            lines += grid_summary(r, time.perf_counter() - t0)
            for ext in ("md", "html"):
                shutil.copy(r.report_dir / f"report.{ext}", out / f"report-{step}.{ext}")
        print("\n".join(lines), flush=True)
        (out / "summary.md").write_text("\n".join(lines) + "\n")  # partial results survive a time-out
    if runs:
        shutil.copy(res_dir / "rtbench.sqlite", out / "rtbench.sqlite")
    print(json.dumps({p: r.id for p, r in runs.items()}))


def grid_summary(r, wall: float) -> list[str]:
    df = r.to_pandas()
    ok = df[df.status.isin(["ok", "mismatch"])]
    tb = r.time_breakdown()
    compile_s = df[df.runtime == "torch-compile"].first_call_ms.fillna(0).sum() / 1e3
    return [f"## {r.sweep.precisions[0]}: run `{r.id}`", "",
            f"- wall time of rtbench.run: {wall:.1f} s (as the run recorded it: {tb['total']:.1f} s)",
            f"- set-up (ONNX export, sessions, torch.compile, first calls incl. cuDNN autotuning): {tb['setup']:.1f} s; "
            f"of which torch.compile's first calls: {compile_s:.1f} s",
            f"- **without set-up: {tb['without_setup']:.1f} s**; without torch.compile's first calls only: "
            f"{tb['total'] - compile_s:.1f} s",
            "- where the time without set-up went: " + ", ".join(
                f"{k} {tb[k]:.1f} s" for k in ("measure", "checks", "workers", "prepare", "imports", "harness",
                                               "peaks", "fingerprint", "report", "other")),
            f"- cells: {df.status.value_counts().to_dict()}",
            f"- CI half-width / trimmed mean: max {100 * ok.ci_rel_halfwidth.max():.2f}%, "
            f"median {100 * ok.ci_rel_halfwidth.median():.2f}%; cells over 1%: "
            f"{int((ok.ci_rel_halfwidth > 0.01).sum())}; capped cells: {int(ok.capped.sum())}",
            "- torch.compile first call per shape, s: "
            + ", ".join(f"{v / 1e3:.1f}" for v in df[df.runtime == "torch-compile"].first_call_ms.dropna()),
            "- per cell, s (median / max): " + ", ".join(
                f"{k} {np.median(v):.3f} / {np.max(v):.3f}" for k, v in per_cell_info(r).items()),
            ""]


if __name__ == "__main__":
    main()
