"""Fairness warnings: reasons a run's comparison may mislead, each with the fix.

Computed from a stored run (its cells, fingerprint, telemetry and how its rounds went) at report time, so
old runs get them too and the store needs no extra column. ``fairness_warnings(run, df)`` returns one
``FairnessWarning`` per problem, listing the cells it concerns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rtbench import stats, telemetry
from rtbench.spec import ROUNDS_SHARE

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


def label(c) -> str:
    return c.label


def _shown(labels: list[str], limit: int = 6) -> str:
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def uses_cuda_graph(c) -> bool:
    return bool(c.cell.runtime.endswith("-cudagraph") or c.info.get("cuda_graph")
                or c.info.get("compile_mode") in GRAPH_COMPILE_MODES)


def _tf32(run, cells) -> list[FairnessWarning]:
    out = []
    bad = [label(c) for c in cells if c.cell.precision == "fp32" and c.info.get("tf32")]
    if bad:
        out.append(FairnessWarning("tf32-in-fp32", f"TF32 was on in {len(bad)} fp32 cell(s): {_shown(bad)}; they "
                                   "ran in TF32, not strict fp32, and are faster for it.",
                                   "Switch TF32 off in that runtime for fp32, or compare it under --precision tf32.",
                                   bad))
    env = run.env.get("env") or {}
    forced = [k for k in ("NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")
              if env.get(k) not in (None, "", "0")]
    fp32 = [label(c) for c in cells if c.cell.precision == "fp32" and c.cell.device.startswith("cuda")]
    if forced and fp32:
        out.append(FairnessWarning("tf32-forced", f"{', '.join(f'{k}={env[k]}' for k in forced)} was set: cuBLAS / "
                                   "cuDNN may use TF32 in every fp32 cell whatever the runtime asked.",
                                   f"Unset {' and '.join(forced)} (or set NVIDIA_TF32_OVERRIDE=0) and re-run.", fp32))
    return out


def _boundaries(cells) -> list[FairnessWarning]:
    kinds = sorted({c.cell.boundary for c in cells})
    if len(kinds) < 2:
        return []
    by = {b: sorted({c.cell.runtime for c in cells if c.cell.boundary == b}) for b in kinds}
    return [FairnessWarning("mixed-boundaries", "Runtimes were timed across different boundaries ("
                            + "; ".join(f"{b}: {', '.join(r)}" for b, r in by.items())
                            + "): end-to-end includes host copies, compute does not.",
                            "Compare cells of one boundary only: re-run every runtime with the same --boundary.",
                            [label(c) for c in cells])]


def _graphs(cells) -> list[FairnessWarning]:
    with_g = sorted({c.cell.runtime for c in cells if uses_cuda_graph(c)})
    without = sorted({c.cell.runtime for c in cells if not uses_cuda_graph(c)})
    if not (with_g and without):
        return []
    return [FairnessWarning("cuda-graphs-one-side", f"CUDA graphs on one side only: {', '.join(with_g)} replay "
                            f"CUDA graphs, {', '.join(without)} do not; launch overhead is removed from one side.",
                            "Compare graph runtimes with graph runtimes (e.g. torch-cudagraph vs "
                            "onnxruntime-cudagraph) and eager with eager; read the mixed speedups as graphs vs no "
                            "graphs.", [label(c) for c in cells if uses_cuda_graph(c)])]


def _timing(run, cells) -> list[FairnessWarning]:
    out = []
    target = run.sweep.policy.ci_target
    wide = [c for c in cells if c.stats.get("ci_above_target") or c.stats.get("capped")]  # capped: schema 1
    if wide:
        why = {"budget": "the run's budget ran out", "max_rounds": "the round cap was reached"}
        reasons = sorted({why.get(c.stats.get("stopped_by"), "the time cap was reached") for c in wide})
        shown = [f"{label(c)} (±{c.stats.get('ci_rel_halfwidth', float('nan')):.1%})" for c in wide]
        out.append(FairnessWarning("ci-above-target", f"The 95% CI is wider than the {target:.1%} target in "
                                   f"{len(wide)} cell(s): {_shown(shown)}; {' or '.join(reasons)} first.",
                                   "Give the run more time (--budget), loosen --ci-target, or make the machine "
                                   "quieter; a launch-bound or drifting cell may stay wide (see below).",
                                   [label(c) for c in wide]))
    drift = [(label(c), c.stats["drift_ratio"]) for c in cells  # where it made the interval wider than asked
             if (c.stats.get("drift_ratio") or 0) >= stats.DRIFT_RATIO and c.stats.get("ci_above_target")]
    if drift:
        out.append(FairnessWarning("drift", f"The time changed between rounds far more than within a block in "
                                   f"{len(drift)} cell(s): " + _shown([f"{n} ({k:.0f}x)" for n, k in drift])
                                   + ". Something that changes over seconds (host CPU speed, clocks, other work) "
                                   "moved them; their intervals include it and are wider for it.",
                                   "Stop other work on the machine, pin CPU frequency or GPU clocks, and re-run; "
                                   "compare such cells only through their intervals.", [n for n, _ in drift]))
    noisy = [(label(c), c.stats["cv"]) for c in cells if (c.stats.get("cv") or 0) > CV_LIMIT]
    if noisy:
        out.append(FairnessWarning("noisy", f"CV above {CV_LIMIT:.0%} (noise) in {len(noisy)} cell(s): "
                                   + _shown([f"{n} ({cv:.0%})" for n, cv in noisy]) + ".",
                                   "Stop other work on the machine, pin GPU clocks (nvidia-smi -lgc) or CPU "
                                   "threads/affinity, and re-run with a larger --budget.", [n for n, _ in noisy]))
    cold = []
    for c in cells:
        first, ms = c.setup.get("first_call_ms"), c.ms
        if first and ms and first > COLD_FACTOR * ms:
            cold.append((label(c), first / ms))
    if cold:
        out.append(FairnessWarning("cold-start", f"First call over {COLD_FACTOR:g}x the estimate in "
                                   f"{len(cold)} cell(s): " + _shown([f"{n} ({k:.0f}x)" for n, k in cold])
                                   + ". The timed figures exclude it (warm-up ran); a service that runs cold pays it.",
                                   "If cold latency matters to you, read setup_s and first_call_ms next to the "
                                   "latency; otherwise nothing to do.", [n for n, _ in cold]))
    unstable = [label(c) for c in cells if c.stats.get("warmup_stable") is False]
    if unstable:
        out.append(FairnessWarning("warmup-unstable", f"Warm-up never became stable in {len(unstable)} cell(s): "
                                   f"{_shown(unstable)}; its last calls still changed by more than the tolerance.",
                                   "Raise TimingPolicy.warmup_max_s (Python API), and look for what keeps "
                                   "changing: clocks, autotuning, other processes.", unstable))
    return out


def _schedule(run) -> list[FairnessWarning]:
    """Set-up took most of the budget (the run went on past it: the rounds get their share), the minimum rounds did
    not fit even at one call per block, or blocks were shortened to fit them."""
    s, p = run.schedule or {}, run.sweep.policy
    budget = s.get("budget_s", p.budget_s)
    if s.get("extended_s"):
        return [FairnessWarning("over-budget", f"Set-up took most of the {budget:g} s budget, so the run went on "
                                f"{s['extended_s']:.0f} s past it to give the rounds half the budget "
                                f"({ROUNDS_SHARE * budget:g} s): the run took longer than asked.",
                                "Give a larger --budget, or measure fewer runtimes or shapes (torch-compile and "
                                "TensorRT build every shape in set-up).")]
    if s.get("over_budget"):
        return [FairnessWarning("over-budget", f"The {p.rounds} minimum rounds of every cell did not fit in the "
                                f"{budget:g} s budget even at one call per block: the run "
                                "took longer than asked.", "Measure fewer cells (runtimes, sizes, batches) or give "
                                "a larger --budget.")]
    if s.get("shortened"):
        return [FairnessWarning("short-blocks", f"Blocks were shortened to {s.get('block_s', 0) * 1e3:.0f} ms (from "
                                f"{p.block_s * 1e3:.0f} ms) to fit the minimum rounds in the budget.",
                                "Give a larger --budget for longer blocks.")]
    return []


def _parity(cells) -> list[FairnessWarning]:
    """Cells whose output check could not tell right from wrong outputs (a control passed)."""
    unsure = [c for c in cells if c.parity.get("verdict") == "inconclusive"]
    if not unsure:
        return []
    why = sorted({c.parity.get("reason", "") for c in unsure})
    return [FairnessWarning("parity-inconclusive", f"The output check could not judge {len(unsure)} cell(s): "
                            f"{_shown([label(c) for c in unsure])} ({'; '.join(why)[:300]}).",
                            "Check those outputs another way, or use a model whose outputs depend on the input "
                            "(pretrained weights, or random weights with calibrated BatchNorm).",
                            [label(c) for c in unsure])]


def _launch_bound(cells) -> list[FairnessWarning]:
    bound = [c for c in cells if c.stats.get("launch_bound")]
    if not bound:
        return []
    return [FairnessWarning("launch-bound", f"{len(bound)} GPU cell(s) are launch-bound: the GPU waited for the "
                            "host to enqueue work (launch time at least 85% of GPU time), so their time follows "
                            f"the host CPU's speed, not the GPU's: {_shown([label(c) for c in bound])}.",
                            "Use CUDA graphs (torch-cudagraph, onnxruntime-cudagraph), torch.compile, or a "
                            "larger batch; compare these cells only on the same host.", [label(c) for c in bound])]


def _gpu(run, cells) -> list[FairnessWarning]:
    out = []
    gpu_cells = [c for c in cells if c.cell.device.startswith("cuda")]
    if not gpu_cells:
        return out
    tele = {label(c): c.telemetry or {} for c in gpu_cells}
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
    cells = [c for c in run.cells if c.measured]
    if df is not None and not df.empty and "runtime" in df:
        keep = {(r.runtime, r.precision, r.size, r.batch, r.boundary) for r in df.itertuples()}
        cells = [c for c in cells if c.cell.key in keep]
    return [*_tf32(run, cells), *_boundaries(cells), *_graphs(cells), *_parity(cells), *_schedule(run),
            *_timing(run, cells), *_launch_bound(cells), *_gpu(run, cells)]
