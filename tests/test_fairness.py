"""Fairness warnings on hand-built runs: each check fires on the crafted case and stays quiet otherwise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtbench.fairness import FairnessWarning, fairness_warnings
from rtbench.results import CellResult, Run
from rtbench.spec import Sweep

GOOD_TELEMETRY = {"available": True, "sm_clock_mhz": {"mean": 1975, "min": 1965, "max": 1980}, "throttled": [],
                  "gpu_processes": {"others": [], "pids_comparable": True}, "power_w": {"mean": 400, "min": 390,
                                                                                          "max": 410}}


def cell(runtime="torch", precision="fp32", size=224, batch=1, device="cuda:0", boundary="compute", status="ok",
         stats=None, setup=None, info=None, telemetry=None) -> CellResult:
    st = {"n": 50, "rounds": 5, "ms": 2.0, "ci_low_ms": 1.98, "ci_high_ms": 2.02, "ci_rel_halfwidth": 0.01, "cv": 0.01,
          "ci_above_target": False, "warmup_stable": True, "drift_ratio": 1.0,
          "round_ms": {str(k): 2.0 for k in range(5)}, **(stats or {})}
    tele = GOOD_TELEMETRY if telemetry is None and device.startswith("cuda") else (telemetry or {})
    return CellResult.from_row({
        "id": 1, "model": "resnet18", "runtime": runtime, "precision": precision, "size": size, "batch": batch,
        "device": device, "boundary": boundary, "status": status, "reason": None, "stats": st,
        "setup": {"session_s": 0.1, "first_call_ms": 5.0, **(setup or {})}, "parity": {},
        "info": {"threads": 2, "tf32": precision == "tf32", **(info or {})}, "telemetry": tele,
        "samples_ms": np.full(50, st["ms"]), "rounds": np.repeat(np.arange(5), 10)})


def make_run(cells, env=None, device="cuda:0", schedule=None) -> Run:
    sweep = Sweep(runtimes=tuple(dict.fromkeys(c.cell.runtime for c in cells)), sizes=(224,), batches=(1,),
                  device=device)
    return Run("r1", "complete", "2025-01-01T00:00:00+00:00", sweep, env or {}, {"per_call_ns": 500.0}, {}, cells,
               Path("."), schedule=schedule or {})


def codes(ws: list[FairnessWarning]) -> list[str]:
    return [w.code for w in ws]


def by_code(ws, code) -> FairnessWarning:
    (w,) = [w for w in ws if w.code == code]
    return w


def test_a_clean_run_has_no_warnings():
    run = make_run([cell(), cell(runtime="onnxruntime"), cell(batch=16)])
    assert fairness_warnings(run, run.to_pandas()) == []


def test_tf32_in_an_fp32_cell_is_flagged_but_not_in_a_tf32_cell():
    run = make_run([cell(), cell(runtime="onnxruntime", info={"tf32": True}), cell(precision="tf32")])
    w = by_code(fairness_warnings(run), "tf32-in-fp32")
    assert w.cells == ["onnxruntime fp32 224px b1"]
    assert "TF32" in w.fix and w.message


@pytest.mark.parametrize("value, fires", [("1", True), ("0", False), ("", False)])
def test_an_environment_that_forces_tf32_is_flagged(value, fires):
    run = make_run([cell(), cell(precision="tf32")], env={"env": {"NVIDIA_TF32_OVERRIDE": value}})
    ws = fairness_warnings(run)
    assert ("tf32-forced" in codes(ws)) is fires
    if fires:
        assert by_code(ws, "tf32-forced").cells == ["torch fp32 224px b1"]


def test_mixed_boundaries_are_flagged():
    run = make_run([cell(), cell(runtime="onnxruntime", boundary="end-to-end")])
    w = by_code(fairness_warnings(run), "mixed-boundaries")
    assert "compute: torch" in w.message and "end-to-end: onnxruntime" in w.message
    assert "--boundary" in w.fix


@pytest.mark.parametrize("cells, fires, flagged", [
    ([cell(), cell(runtime="torch-cudagraph", info={"cuda_graph": True})], True, ["torch-cudagraph fp32 224px b1"]),
    ([cell(), cell(runtime="onnxruntime", info={"cuda_graph": True})], True, ["onnxruntime fp32 224px b1"]),
    ([cell(), cell(runtime="torch-compile", info={"compile_mode": "reduce-overhead"})], True,
     ["torch-compile fp32 224px b1"]),
    ([cell(), cell(runtime="torch-compile", info={"compile_mode": "max-autotune-no-cudagraphs"})], False, []),
    ([cell(runtime="torch-cudagraph"), cell(runtime="onnxruntime-cudagraph")], False, []),
])
def test_cuda_graphs_on_one_side_only(cells, fires, flagged):
    ws = fairness_warnings(make_run(cells))
    assert ("cuda-graphs-one-side" in codes(ws)) is fires
    if fires:
        assert by_code(ws, "cuda-graphs-one-side").cells == flagged


def test_wide_noisy_drifting_cold_and_unstable_cells():
    run = make_run([
        cell(batch=1, stats={"ci_above_target": True, "ci_rel_halfwidth": 0.034, "stopped_by": "budget"}),
        cell(batch=2, stats={"cv": 0.08}),
        cell(batch=4, stats={"cv": 0.049}),
        cell(batch=8, setup={"first_call_ms": 50.0}),  # 25x the 2 ms estimate
        cell(batch=16, setup={"first_call_ms": 15.0}),  # 7.5x: fine
        cell(batch=32, stats={"warmup_stable": False}),
        cell(batch=64, stats={"warmup_stable": None}),  # not checked is not unstable
        cell(batch=128, stats={"drift_ratio": 7.5, "ci_above_target": True, "stopped_by": "budget"}),
        cell(batch=256, stats={"drift_ratio": float("nan")}),  # blocks of one call: cannot tell
        cell(batch=512, stats={"drift_ratio": 9.0}),  # drifting, but its interval is still within the target
    ])
    ws = fairness_warnings(run)
    wide = by_code(ws, "ci-above-target")
    assert wide.cells == ["torch fp32 224px b1", "torch fp32 224px b128"] and "--budget" in wide.fix
    assert "±3.4%" in wide.message and "budget ran out" in wide.message
    assert by_code(ws, "noisy").cells == ["torch fp32 224px b2"] and "8%" in by_code(ws, "noisy").message
    assert by_code(ws, "cold-start").cells == ["torch fp32 224px b8"] and "25x" in by_code(ws, "cold-start").message
    assert by_code(ws, "warmup-unstable").cells == ["torch fp32 224px b32"]
    assert by_code(ws, "drift").cells == ["torch fp32 224px b128"] and "8x" in by_code(ws, "drift").message
    assert sorted(codes(ws)) == ["ci-above-target", "cold-start", "drift", "noisy", "warmup-unstable"]


def test_launch_bound_gpu_cells_are_flagged_with_the_fix():
    run = make_run([cell(batch=1, stats={"launch_bound": True}), cell(batch=16, stats={"launch_bound": False})])
    w = by_code(fairness_warnings(run), "launch-bound")
    assert w.cells == ["torch fp32 224px b1"] and "CUDA graphs" in w.fix and "torch.compile" in w.fix


@pytest.mark.parametrize("schedule, code", [({"over_budget": True, "budget_s": 30}, "over-budget"),
                                            ({"extended_s": 20.0, "budget_s": 70}, "over-budget"),
                                            ({"shortened": True, "block_s": 0.004}, "short-blocks"), ({}, None)])
def test_a_budget_too_small_says_so(schedule, code):
    ws = codes(fairness_warnings(make_run([cell()], schedule=schedule)))
    assert ws == ([code] if code else [])


def test_schema_1_cells_that_hit_the_time_cap_are_still_flagged():
    w = by_code(fairness_warnings(make_run([cell(stats={"capped": True, "ci_above_target": None})])),
                "ci-above-target")
    assert w.cells == ["torch fp32 224px b1"] and "time cap" in w.message


def test_failed_cells_are_not_judged():
    run = make_run([cell(), cell(batch=2, status="failed", stats={"ci_above_target": True, "cv": 0.5})])
    assert fairness_warnings(run) == []


def test_clock_spread_and_throttle_reasons_are_flagged():
    spread = {**GOOD_TELEMETRY, "sm_clock_mhz": {"mean": 1800, "min": 1500, "max": 1980}}
    throttled = {**GOOD_TELEMETRY, "throttled": ["sw_power_cap"]}
    idle = {**GOOD_TELEMETRY, "reasons": ["gpu_idle"]}
    run = make_run([cell(batch=1, telemetry=spread), cell(batch=2, telemetry=throttled), cell(batch=4, telemetry=idle)])
    w = by_code(fairness_warnings(run), "clocks-changed")
    assert w.cells == ["torch fp32 224px b1", "torch fp32 224px b2"]
    assert "1500-1980 MHz" in w.message and "sw_power_cap" in w.message and "nvidia-smi -lgc" in w.fix


def test_another_gpu_process_during_a_cell_or_at_run_start():
    busy = {**GOOD_TELEMETRY, "gpu_processes": {"others": [{"pid": 4242, "used_mib": 900.0}], "pids_comparable": True}}
    run = make_run([cell(), cell(batch=2, telemetry=busy)])
    w = by_code(fairness_warnings(run), "gpu-shared")
    assert w.cells == ["torch fp32 224px b2"] and "4242" in w.message and "nvidia-smi" in w.fix
    env = {"nvml": {"device_processes": {"others": [{"pid": 77, "used_mib": 1.0}], "pids_comparable": True}}}
    w = by_code(fairness_warnings(make_run([cell()], env=env)), "gpu-shared")
    assert "at run start" in w.message and "77" in w.message
    # pids from another namespace: rtbench's own contexts are allowed for
    own = {**GOOD_TELEMETRY, "gpu_processes": {"others": [{"pid": 1}, {"pid": 2}], "pids_comparable": False}}
    assert "gpu-shared" not in codes(fairness_warnings(make_run([cell(telemetry=own)])))


def test_gpu_cells_without_telemetry_say_so_cpu_cells_need_none():
    missing = {"available": False, "reason": "not available: NVML could not start (NVML Shared Library Not Found)"}
    w = by_code(fairness_warnings(make_run([cell(telemetry=missing)])), "telemetry-unavailable")
    assert "NVML Shared Library Not Found" in w.message and "nvidia-ml-py" in w.fix
    assert fairness_warnings(make_run([cell(device="cpu")], device="cpu")) == []


def test_df_limits_the_warnings_to_its_cells():
    run = make_run([cell(stats={"ci_above_target": True}), cell(batch=2, stats={"ci_above_target": True})])
    df = run.to_pandas()
    assert by_code(fairness_warnings(run, df[df["batch"] == 2]), "ci-above-target").cells == ["torch fp32 224px b2"]


def test_the_markdown_report_lists_warnings_with_their_fix():
    from rtbench.report import document
    from rtbench.report.i18n import translator
    from rtbench.report.markdown import to_markdown

    def render(run, df):
        return to_markdown(document.build(run, df, translator("en"), plots=False))

    run = make_run([cell(), cell(runtime="torch-cudagraph", info={"cuda_graph": True},
                                 stats={"ci_above_target": True})])
    md = render(run, run.to_pandas())
    section = md.split("## Fairness warnings", 1)[1]
    assert "**cuda-graphs-one-side**" in section and "**ci-above-target**" in section
    assert section.count("Fix:") == 2
    clean = make_run([cell()])
    assert "## Fairness warnings\n\nNone" in render(clean, clean.to_pandas())


def test_rtbench_run_prints_the_warnings_the_report_lists(cli, tmp_path):
    """A real tiny CPU run whose CI target cannot be met: 'ci-above-target' in the terminal and report.md alike."""
    import re

    r = cli("run", "--runtimes", "torch", "--sizes", "32", "--batches", "1", "--device", "cpu", "--budget", "12",
            "--rounds", "2", "--ci-target", "0.0001", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    terminal = re.findall(r"^warning (\S+):", r.stdout, flags=re.M)
    assert "ci-above-target" in terminal and "fix: Give the run more time (--budget)" in r.stdout
    (report,) = (tmp_path / "out").glob("*/report.md")
    section = report.read_text().split("## Fairness warnings", 1)[1]
    assert re.findall(r"^- \*\*(\S+)\*\*:", section, flags=re.M) == terminal


def test_an_inconclusive_output_check_is_a_warning_not_a_mismatch():
    from rtbench.engine import parity_status

    unsure = {"verdict": "inconclusive", "ok": False, "reason": "the control for another input passed"}
    assert parity_status(unsure) == ("ok", None)
    assert parity_status({"verdict": "mismatch", "ok": False, "reason": "r"}) == ("mismatch", "r")
    assert parity_status({"ok": False, "reason": "old"}) == ("mismatch", "old")  # a schema-1 record
    assert parity_status({}) == ("ok", None)  # no model, no check (the null runtime)
    c = cell(batch=4)
    c.parity.update(unsure)
    w = by_code(fairness_warnings(make_run([cell(), c])), "parity-inconclusive")
    assert w.cells == ["torch fp32 224px b4"] and "another input passed" in w.message


def test_launch_bound_is_judged_only_where_the_launch_time_can_tell():
    from rtbench.engine import launch_bound

    assert launch_bound(0.95, {}) is True and launch_bound(0.5, {}) is False
    assert launch_bound(1.0, {"call_waits_for_gpu": True}) is None  # ONNX Runtime's Run waits for the GPU
    run = make_run([cell(stats={"launch_bound": None})])
    assert "launch-bound" not in codes(fairness_warnings(run))
