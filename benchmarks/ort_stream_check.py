"""Does ONNX Runtime run its CUDA kernels on the stream rtbench gives it? A behavioural check on one GPU.

Part 1, raw ONNX Runtime sessions (ResNet18 fp32, batch 16, 224 px, IO binding on torch tensors). On the
stream a setting names: a long GPU sleep (``torch.cuda._sleep``), then NaN into the bound output, then one
ORT run. If ORT's kernels run on that stream they come after the sleep and the fill: the output is finite and
CUDA events recorded on the stream around the run span ORT's work. On a stream of its own ORT finishes while
the sleep is still going, the fill comes later and leaves NaN, and the events span nothing. Settings:

- ``old``: rtbench's provider options with torch's default stream handle, 0 (what rtbench passed before);
- ``new``: the same options with a non-default torch stream's handle (what each runtime group now gets);
- ``new + CUDA graph``: ``new`` with ``enable_cuda_graph`` (runs replay a captured graph).

Part 2, rtbench's own sessions: a sleep on ``Session.stream``, then one ``call()``; the host time of the call
shows whether it waited for the sleep (ORT synchronises the stream it runs on at the end of a run).

Part 3, CUDA-graph parity: the static output of ``torch-cudagraph`` / ``onnxruntime-cudagraph`` is NaN after
the session is made, and after one ``call()`` (a replay) it matches PyTorch fp32.

Usage (repository root, a CUDA GPU, onnxruntime-gpu):

    PYTHONPATH=src python3 benchmarks/ort_stream_check.py --out DIR

prints the tables and writes ``DIR/ort_stream_check.md`` (command, date, hardware, tables).
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SIZE, BATCH = 224, 16


def gpu_facts() -> str:
    import onnxruntime as ort
    import torch

    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        smi = torch.cuda.get_device_name(0) + ", driver unknown"
    return (f"{smi} (nvidia-smi: name, driver); torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"onnxruntime {ort.__version__}, Python {platform.python_version()}, {platform.platform()}")


def sleep_cycles(ms: float) -> int:
    """GPU clock cycles that ``torch.cuda._sleep`` needs to keep a stream busy for about ``ms``."""
    import torch

    probe = 2**24
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(probe)
    end.record()
    end.synchronize()
    return int(probe * ms / start.elapsed_time(end))


def host_ms(fn) -> float:
    import torch

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def raw_check(rt, handle: int, stream, graph: bool, cycles: int) -> dict:
    """One ORT run behind a sleep and a NaN fill on ``stream``: did its kernels come after them?"""
    import onnxruntime as ort
    import torch

    from rtbench.runtimes.onnxruntime import cuda_provider_options

    opts = cuda_provider_options(0, "fp32", rt.search, handle, graph)
    sess = ort.InferenceSession(str(rt.path), rt.opts, providers=[("CUDAExecutionProvider", opts)])
    x = torch.randn(BATCH, 3, SIZE, SIZE, device="cuda")
    y = torch.empty(BATCH, 1000, device="cuda")
    b = sess.io_binding()
    b.bind_input("input", "cuda", 0, np.float32, list(x.shape), x.data_ptr())
    b.bind_output("output", "cuda", 0, np.float32, list(y.shape), y.data_ptr())
    for _ in range(3):  # warm-up (cuDNN search, graph capture)
        sess.run_with_iobinding(b)
    alone = min(host_ms(lambda: sess.run_with_iobinding(b)) for _ in range(5))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(cycles)
        y.fill_(float("nan"))
        start.record(stream)
        t0 = time.perf_counter()
        sess.run_with_iobinding(b)
        run = (time.perf_counter() - t0) * 1e3
        end.record(stream)
    torch.cuda.synchronize()
    finite = bool(torch.isfinite(y).all())
    events = start.elapsed_time(end)
    on = finite and events >= 0.5 * alone
    return {"handle": handle, "finite": finite, "run_ms": run, "events_ms": events, "alone_ms": alone,
            "verdict": "on the stream" if on else ("NOT on the stream" if not finite else "unclear")}


def session_check(model, workdir: Path, runtime: str, boundary: str, cycles: int, sleep_ms: float) -> dict:
    """rtbench's own session: does call() wait for a sleep queued on Session.stream?"""
    import torch

    from rtbench.runtimes import base
    from rtbench.runtimes.common import make_input
    from rtbench.spec import Cell, Sweep

    sweep = Sweep(runtimes=(runtime,), device="cuda", boundary=boundary, sizes=(SIZE,), batches=(BATCH,))
    rt = base.get(runtime)(model, sweep, "fp32", workdir)
    s = rt.session(Cell(sweep.model, runtime, "fp32", SIZE, BATCH, "cuda", boundary), make_input(BATCH, SIZE))
    for _ in range(3):
        s.call()
    alone = min(host_ms(s.call) for _ in range(5))
    torch.cuda.synchronize()
    with torch.cuda.stream(s.stream):
        torch.cuda._sleep(cycles)
        t0 = time.perf_counter()
        s.call()
        call = (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize()
    rt.close()
    return {"runtime": runtime, "boundary": boundary, "handle": s.stream.cuda_stream, "call_ms": call,
            "alone_ms": alone, "waited": call >= 0.5 * sleep_ms}


def graph_check(model, workdir: Path, runtime: str) -> dict:
    """Is the static output NaN once the session is made, and right after one replay?"""
    import torch

    from rtbench import parity
    from rtbench.runtimes import base
    from rtbench.runtimes.common import make_input
    from rtbench.spec import Cell, Sweep

    sweep = Sweep(runtimes=(runtime,), device="cuda", sizes=(SIZE,), batches=(BATCH,))
    rt = base.get(runtime)(model, sweep, "fp32", workdir)
    x = make_input(BATCH, SIZE)
    s = rt.session(Cell(sweep.model, runtime, "fp32", SIZE, BATCH, "cuda"), x)
    before = bool(np.isnan(s.fetch()).all())
    s.call()
    torch.cuda.synchronize()
    par = parity.check(s.fetch(), parity.reference(model, x, "cuda"), "fp32")
    rt.close()
    return {"runtime": runtime, "nan_before": before, "parity_ok": par["ok"], "max_rel": par.get("max_rel")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for ort_stream_check.md")
    ap.add_argument("--sleep-ms", type=float, default=100.0, help="GPU sleep queued before each checked run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from rtbench.models import resolve
    from rtbench.runtimes import base
    from rtbench.spec import Sweep

    if not torch.cuda.is_available():
        sys.exit("ort_stream_check needs a CUDA GPU")
    model = resolve("resnet18")
    work = Path(tempfile.mkdtemp(prefix="ort-stream-check-"))  # the ONNX export, kept out of --out
    rt = base.get("onnxruntime")(model, Sweep(runtimes=("onnxruntime",), device="cuda"), "fp32", work)
    cycles = sleep_cycles(args.sleep_ms)
    new_stream = torch.cuda.Stream()
    default = torch.cuda.default_stream()
    raw = {"old": raw_check(rt, default.cuda_stream, default, False, cycles),
           "new": raw_check(rt, new_stream.cuda_stream, new_stream, False, cycles),
           "new + CUDA graph": raw_check(rt, new_stream.cuda_stream, new_stream, True, cycles)}
    sessions = [session_check(model, work, r, b, cycles, args.sleep_ms)
                for r, b in (("onnxruntime", "compute"), ("onnxruntime", "end-to-end"),
                             ("onnxruntime-cudagraph", "compute"))]
    graphs = [graph_check(model, work, r) for r in ("torch-cudagraph", "onnxruntime-cudagraph")]

    lines = [
        "# Does ONNX Runtime run on the stream rtbench gives it?",
        "",
        f"- **Date:** {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- **Hardware and software:** {gpu_facts()}",
        (f"- **Command:** `PYTHONPATH=src python3 benchmarks/ort_stream_check.py --out {args.out}"
         + (f" --sleep-ms {args.sleep_ms:g}`" if args.sleep_ms != 100.0 else "`")),
        f"- **What:** ResNet18 fp32, batch {BATCH}, {SIZE} px, CUDA provider, IO binding. A {args.sleep_ms:g} ms GPU "
        "sleep, then NaN into the bound output, are queued on the stream a setting names, then one ORT run. "
        "Finite output = ORT's kernels ran after them (on that stream). *Events* = CUDA events recorded on the "
        "stream around the run; *alone* = the same run on an idle GPU (host time with synchronisation, best of 5).",
        "",
        "## 1. Raw sessions: old (handle 0) and new (the group's stream) settings",
        "",
        "| setting | user_compute_stream | output after the run | run host ms | events ms | alone ms | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in raw.items():
        lines.append(f"| {name} | {r['handle']:#x} | {'finite' if r['finite'] else 'NaN'} | {r['run_ms']:.2f} | "
                     f"{r['events_ms']:.3f} | {r['alone_ms']:.3f} | {r['verdict']} |")
    lines += [
        "",
        f"## 2. rtbench sessions: does `call()` wait for a {args.sleep_ms:g} ms sleep queued on `Session.stream`?",
        "",
        "| runtime | boundary | Session.stream handle | call host ms after the sleep | alone ms | waited |",
        "|---|---|---|---|---|---|",
    ]
    for r in sessions:
        lines.append(f"| {r['runtime']} | {r['boundary']} | {r['handle']:#x} | {r['call_ms']:.2f} | "
                     f"{r['alone_ms']:.3f} | {'yes' if r['waited'] else 'NO'} |")
    lines += [
        "",
        "## 3. CUDA-graph parity reads a replay",
        "",
        "| runtime | output NaN before the first call | parity after one replay | max rel error |",
        "|---|---|---|---|",
    ]
    for r in graphs:
        rel = "n/a" if r["max_rel"] is None else f"{r['max_rel']:.1e}"
        lines.append(f"| {r['runtime']} | {'yes' if r['nan_before'] else 'NO'} | "
                     f"{'ok' if r['parity_ok'] else 'FAILED'} | {rel} |")
    text = "\n".join(lines) + "\n"
    (args.out / "ort_stream_check.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
