"""A synthetic run written through the real store: fixed samples from a seeded generator, no runtime involved.

For the report's tests and benchmark, and for trying the report without measuring anything. Latency follows
``overhead + per-image cost x batch x pixels``, so throughput saturates with batch as on real devices.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from rtbench import stats
from rtbench.results import Run
from rtbench.spec import Cell, Sweep
from rtbench.status import Status
from rtbench.store import Store
from rtbench.timing import Block

RUNTIMES = ("torch", "onnxruntime", "torch-compile")
FIXED_CREATED = "2025-01-01T00:00:00+00:00"
ENV = {"rtbench": "0.1.0", "torch": "2.4.0", "torch_threads": 2, "cpu": "Synthetic CPU", "gpu": "Synthetic GPU",
       "packages": {"torch": "2.4.0", "onnxruntime": "1.18.0", "numpy": "1.26.4"}}
PEAK = {"device": "cpu", "name": "Synthetic CPU", "datasheet": None,
        "measured": {"matmul_fp32_flops": 5.0e12, "matmul_fp16_flops": 1.0e13}}
FLOPS_224 = 3.6e9  # ResNet18 at 224x224, 2 FLOPs per multiply-add
ROUNDS = 10  # each cell's samples are stored as this many rounds


def default_latency(runtime: str, precision: str, size: int, batch: int) -> float:
    """ms per call: onnxruntime 25% faster at small batches only; torch-compile within 1% of torch."""
    base = 3.0 + 0.8 * batch * (size / 224) ** 2
    factor = {"torch": 1.0, "onnxruntime": 0.75 if batch < 8 else 1.0, "torch-compile": 0.99}.get(runtime, 1.1)
    return base * factor * (0.6 if precision in ("fp16", "bf16") else 1.0)


def build_run(out: Path | str, run_id: str = "synthetic", runtimes=RUNTIMES, precisions=("fp32",),
              sizes=(224, 256, 384, 512), batches=(1, 4, 8, 16), n: int = 60, noise: float = 0.03, seed: int = 0,
              device: str = "cpu", latency: Callable[[str, str, int, int], float] = default_latency,
              overrides: dict[tuple, tuple[str, str]] | None = None, peak: dict | None = None) -> Run:
    """Write a run into ``<out>/rtbench.sqlite`` and load it back (its creation time fixed for golden files).

    ``overrides`` maps (runtime, precision, size, batch) to (status, reason): failed/oom/... cells get no samples;
    ``mismatch`` keeps its samples. ``noise`` is the relative std of the samples.
    """
    rng = np.random.default_rng(seed)
    sweep = Sweep(model="resnet18", runtimes=tuple(runtimes), precisions=tuple(precisions), sizes=tuple(sizes),
                  batches=tuple(batches), device=device)
    store = Store(out)
    try:
        store.create_run(run_id, sweep.to_dict(), ENV, {"per_call_ns": 850.0}, peak or PEAK)
        for cell in sweep.cells():
            status, reason = (overrides or {}).get((cell.runtime, cell.precision, cell.size, cell.batch), ("ok", None))
            _add(store, run_id, cell, status, reason, rng, n, noise, latency)
        store.set_status(run_id, "complete")
    finally:
        store.close()
    return dataclasses.replace(Run.load(run_id, out), created=FIXED_CREATED)


def _add(store: Store, run_id: str, cell: Cell, status: str, reason, rng, n: int, noise: float, latency) -> None:
    if not Status(status).measured:
        store.add_cell(run_id, cell, status, reason)
        return
    ms = latency(cell.runtime, cell.precision, cell.size, cell.batch)
    samples = ms * (1 + noise * rng.standard_normal(n))
    rounds = np.arange(n) * ROUNDS // n  # ROUNDS blocks of consecutive samples
    st = stats.summarize(samples, rounds)
    st.update({"warmup_calls": 10, "warmup_s": 0.2, "warmup_stable": True, "timed_s": float(samples.sum() / 1e3),
               "clock": "host", "flops_per_image": FLOPS_224 * (cell.size / 224) ** 2, "stopped_by": "target",
               "ci_above_target": False, "host": {"ms": st["ms"], "median_ms": st["median_ms"]}})
    ok = status == "ok"
    parity = {"max_abs": 1e-5 if ok else 0.5, "max_rel": 1e-4 if ok else 0.2, "top1_agree": 1.0 if ok else 0.6, "ok": ok}
    cid = store.add_cell(run_id, cell, status, reason, stats=st, setup={"session_s": 0.1, "first_call_ms": ms * 3},
                         parity=parity, info={"threads": 2})
    for r in range(ROUNDS):
        x = samples[rounds == r]
        store.add_block(cid, r, Block(x, x * 1.01, np.empty(0), 0, float(x.sum() / 1e3)))
