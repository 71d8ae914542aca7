"""Fairness warnings: reasons a run's comparison may mislead, each with the fix.

Computed from a stored run (its cells, fingerprint and telemetry) at report time, so old runs get them
too and the store needs no extra column. ``fairness_warnings(run, df)`` returns one ``FairnessWarning``
per problem, listing the cells it concerns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rtbench import telemetry

MEASURED = ("ok", "mismatch")
CV_LIMIT = 0.05  # coefficient of variation above which a cell is called noisy
CLOCK_SPREAD_LIMIT = 0.05  # (max - min) / max of the SM clock during a cell
COLD_FACTOR = 10.0  # first call slower than this many trimmed means
GRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs


@dataclass
class FairnessWarning:
    """One problem: a stable ``code``, what was seen, how to fix it, and the cells it concerns."""

    code: str
    message: str
    fix: str
    cells: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fix": self.fix, "cells": list(self.cells)}


def label(c: dict) -> str:
    return f"{c['runtime']} {c['precision']} {c['size']}px b{c['batch']}"


def _shown(labels: list[str], limit: int = 6) -> str:
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def uses_cuda_graph(c: dict) -> bool:
    info = c.get("info") or {}
    return bool(c["runtime"].endswith("-cudagraph") or info.get("cuda_graph")
                or info.get("compile_mode") in GRAPH_COMPILE_MODES)


def _tf32(run, cells) -> list[FairnessWarning]:
    out = []
    bad = [label(c) for c in cells if c["precision"] == "fp32" and (c.get("info") or {}).get("tf32")]
    if bad:
        out.append(FairnessWarning("tf32-in-fp32", f"TF32 was on in {len(bad)} fp32 cell(s): {_shown(bad)}; they "
                                   "ran in TF32, not strict fp32, and are faster for it.",
                                   "Switch TF32 off in that runtime for fp32, or compare it under --precision tf32.",
                                   bad))
    env = run.env.get("env") or {}
    forced = [k for k in ("NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")
              if env.get(k) not in (None, "", "0")]
    fp32 = [label(c) for c in cells if c["precision"] == "fp32" and c["device"].startswith("cuda")]
    if forced and fp32:
        out.append(FairnessWarning("tf32-forced", f"{', '.join(f'{k}={env[k]}' for k in forced)} was set: cuBLAS / "
                                   "cuDNN may use TF32 in every fp32 cell whatever the runtime asked.",
                                   f"Unset {' and '.join(forced)} (or set NVIDIA_TF32_OVERRIDE=0) and re-run.", fp32))
    return out


def _boundaries(cells) -> list[FairnessWarning]:
    kinds = sorted({c["boundary"] for c in cells})
    if len(kinds) < 2:
        return []
    by = {b: sorted({c["runtime"] for c in cells if c["boundary"] == b}) for b in kinds}
    return [FairnessWarning("mixed-boundaries", "Runtimes were timed across different boundaries ("
                            + "; ".join(f"{b}: {', '.join(r)}" for b, r in by.items())
                            + "): end-to-end includes host copies, compute does not.",
                            "Compare cells of one boundary only: re-run every runtime with the same --boundary.",
                            [label(c) for c in cells])]


def _graphs(cells) -> list[FairnessWarning]:
    with_g = sorted({c["runtime"] for c in cells if uses_cuda_graph(c)})
    without = sorted({c["runtime"] for c in cells if not uses_cuda_graph(c)})
    if not (with_g and without):
        return []
    return [FairnessWarning("cuda-graphs-one-side", f"CUDA graphs on one side only: {', '.join(with_g)} replay "
                            f"CUDA graphs, {', '.join(without)} do not; launch overhead is removed from one side.",
                            "Compare graph runtimes with graph runtimes (e.g. torch-cudagraph vs "
                            "onnxruntime-cudagraph) and eager with eager; read the mixed speedups as graphs vs no "
                            "graphs.", [label(c) for c in cells if uses_cuda_graph(c)])]


def _timing(cells) -> list[FairnessWarning]:
    out = []
    capped = [label(c) for c in cells if (c.get("stats") or {}).get("capped")]
    if capped:
        out.append(FairnessWarning("capped", f"{len(capped)} cell(s) hit the time cap before the CI target: "
                                   f"{_shown(capped)}; their CI is wider than asked.",
                                   "Raise --max-time, loosen --ci-target, or make the machine quieter.", capped))
    noisy = [(label(c), c["stats"]["cv"]) for c in cells if (c.get("stats") or {}).get("cv", 0) > CV_LIMIT]
    if noisy:
        out.append(FairnessWarning("noisy", f"CV above {CV_LIMIT:.0%} (noise) in {len(noisy)} cell(s): "
                                   + _shown([f"{n} ({cv:.0%})" for n, cv in noisy]) + ".",
                                   "Stop other work on the machine, pin GPU clocks (nvidia-smi -lgc) or CPU "
                                   "threads/affinity, and re-run with a longer --max-time.", [n for n, _ in noisy]))
    cold = []
    for c in cells:
        st, first = c.get("stats") or {}, (c.get("setup") or {}).get("first_call_ms")
        tm = st.get("trimmed_mean_ms")
        if first and tm and first > COLD_FACTOR * tm:
            cold.append((label(c), first / tm))
    if cold:
        out.append(FairnessWarning("cold-start", f"First call over {COLD_FACTOR:g}x the trimmed mean in "
                                   f"{len(cold)} cell(s): " + _shown([f"{n} ({k:.0f}x)" for n, k in cold])
                                   + ". The timed figures exclude it (warm-up ran); a service that runs cold pays it.",
                                   "If cold latency matters to you, read setup_s and first_call_ms next to the "
                                   "latency; otherwise nothing to do.", [n for n, _ in cold]))
    unstable = [label(c) for c in cells if (c.get("stats") or {}).get("warmup_stable") is False]
    if unstable:
        out.append(FairnessWarning("warmup-unstable", f"Warm-up never became stable in {len(unstable)} cell(s): "
                                   f"{_shown(unstable)}; timing may have started while still warming up.",
                                   "Raise TimingPolicy.warmup_max_s (Python API), and look for what keeps "
                                   "changing: clocks, autotuning, other processes.", unstable))
    return out


def _gpu(run, cells) -> list[FairnessWarning]:
    out = []
    gpu_cells = [c for c in cells if c["device"].startswith("cuda")]
    if not gpu_cells:
        return out
    tele = {label(c): c.get("telemetry") or {} for c in gpu_cells}
    missing = [n for n, t in tele.items() if not t.get("available")]
    if missing:
        why = next((t.get("reason") for t in tele.values() if t.get("reason")), "no telemetry was stored")
        out.append(FairnessWarning("telemetry-unavailable", f"GPU telemetry missing for {len(missing)} cell(s) "
                                   f"({why}): clocks, throttling and other GPU users were not checked.",
                                   "pip install 'rtbench[gpu]' (nvidia-ml-py) and check that nvidia-smi works.",
                                   missing))
    moved = []
    for n, t in tele.items():
        clk = t.get("sm_clock_mhz") or {}
        spread = (clk["max"] - clk["min"]) / clk["max"] if clk.get("max") else 0.0
        if spread > CLOCK_SPREAD_LIMIT or t.get("throttled"):
            what = [f"SM clock {clk['min']:.0f}-{clk['max']:.0f} MHz"] if spread > CLOCK_SPREAD_LIMIT else []
            moved.append((n, ", ".join(what + list(t.get("throttled") or []))))
    if moved:
        out.append(FairnessWarning("clocks-changed", f"Clocks changed or were throttled in {len(moved)} cell(s): "
                                   + _shown([f"{n} ({w})" for n, w in moved]) + ".",
                                   "Lock the clocks (sudo nvidia-smi -lgc <max>,<max>), give the GPU cooling and "
                                   "power headroom, and re-run those cells.", [n for n, _ in moved]))
    others = [n for n, t in tele.items() if telemetry.others_count(t.get("gpu_processes"))]
    start = telemetry.others_count((run.env.get("nvml") or {}).get("device_processes"))
    if others or start:
        pids = sorted({p["pid"] for t in tele.values() for p in (t.get("gpu_processes") or {}).get("others", [])}
                      | {p["pid"] for p in ((run.env.get("nvml") or {}).get("device_processes") or {}).get(
                          "others", [])})
        out.append(FairnessWarning("gpu-shared", f"Another process used the GPU (pids {', '.join(map(str, pids))})"
                                   + (" at run start" if start else "") + (f" during {len(others)} cell(s)"
                                                                           if others else "") + ".",
                                   "Stop the other GPU jobs (nvidia-smi lists them) and re-run.", others))
    return out


def fairness_warnings(run, df=None) -> list[FairnessWarning]:
    """Every fairness warning of a stored run (``df``, when given, limits them to the cells it holds)."""
    cells = [c for c in run.cells if c["status"] in MEASURED]
    if df is not None and not df.empty and "runtime" in df:
        keep = {(r.runtime, r.precision, r.size, r.batch, r.boundary) for r in df.itertuples()}
        cells = [c for c in cells if (c["runtime"], c["precision"], c["size"], c["batch"], c["boundary"]) in keep]
    return [*_tf32(run, cells), *_boundaries(cells), *_graphs(cells), *_timing(cells), *_gpu(run, cells)]
