"""What of the GPU issue can be tested without a GPU: precisions, boundaries, parity, peaks, provider checks."""
from __future__ import annotations

import types

import pytest
import torch

import rtbench
from rtbench import parity
from rtbench.hardware import DATASHEET_TFLOPS, datasheet_peak, peak_flops
from rtbench.results import _ran_precision
from rtbench.runtimes.base import Unsupported
from rtbench.runtimes.common import check_precision, set_tf32, torch_dtype
from rtbench.spec import Sweep, TimingPolicy

FAST = TimingPolicy(warmup_min_calls=2, warmup_min_s=0.0, warmup_max_s=0.2, min_calls=5, min_time_s=0.02,
                    max_time_s=0.2, ci_target=0.05)


# precisions ------------------------------------------------------------------------------------
def test_strict_fp32_turns_tf32_off_and_tf32_turns_it_on():
    assert set_tf32("tf32") is True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert set_tf32("fp32") is False
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_torch_compile_is_a_default_runtime_on_cuda_only():
    from rtbench.runtimes import base

    compiled = base.get("torch-compile")
    assert compiled.is_default("cuda:0") and not compiled.is_default("cpu")
    assert base.get("torch").is_default("cpu") and not base.get("torch-cudagraph").is_default("cuda:0")
    assert "torch-compile" not in base.default_runtimes("cpu") and "torch" in base.default_runtimes("cpu")


def test_parity_reference_leaves_the_cudnn_autotuner_as_it_was():
    from rtbench.models import resolve

    model = resolve("resnet18")
    for setting in (True, False):
        torch.backends.cudnn.benchmark = setting
        out = parity.reference(model, torch.randn(1, 3, 32, 32), "cpu")
        assert out.shape == (1, 1000) and torch.backends.cudnn.benchmark is setting


def test_dtypes_per_precision():
    assert [torch_dtype(p) for p in ("fp32", "tf32", "fp16", "bf16")] == [
        torch.float32, torch.float32, torch.float16, torch.bfloat16]


def test_tf32_on_cpu_is_unsupported():
    with pytest.raises(Unsupported, match="tf32"):
        check_precision("cpu", "tf32")
    check_precision("cpu", "bf16")  # bf16 runs on CPUs


def test_utilisation_uses_the_precision_that_ran():
    assert _ran_precision({"precision": "fp32", "info": {"tf32": True}}) == "tf32"
    assert _ran_precision({"precision": "fp32", "info": {"tf32": False}}) == "fp32"
    assert _ran_precision({"precision": "fp16", "info": {}}) == "fp16"


def test_cpu_sweep_records_unsupported_precisions_and_goes_on(tmp_path):
    r = rtbench.run(runtimes="torch,onnxruntime", precision="fp32,tf32,bf16", sizes=[32], batches=[1],
                    device="cpu", out=tmp_path, policy=FAST, report=False)
    st = {(c["runtime"], c["precision"]): (c["status"], c["reason"]) for c in r.cells}
    assert st[("torch", "fp32")][0] == "ok" and st[("onnxruntime", "fp32")][0] == "ok"
    assert st[("torch", "tf32")][0] == "unsupported" and "tf32" in st[("torch", "tf32")][1]
    assert st[("onnxruntime", "bf16")][0] == "unsupported"
    assert st[("torch", "bf16")][0] in ("ok", "mismatch")  # bf16 on the CPU runs; parity decides


# boundaries ------------------------------------------------------------------------------------
def test_both_boundaries_on_cpu_record_what_was_timed(tmp_path):
    infos = {}
    for boundary in ("compute", "end-to-end"):
        r = rtbench.run(runtimes="torch,onnxruntime", sizes=[32], batches=[2], device="cpu", boundary=boundary,
                        out=tmp_path / boundary, policy=FAST, report=False)
        for c in r.cells:
            assert c["status"] == "ok", c["reason"]
            assert c["boundary"] == boundary
            infos[(c["runtime"], boundary)] = c["info"]
    assert infos[("onnxruntime", "compute")]["io_binding"] is True
    assert infos[("onnxruntime", "end-to-end")]["io_binding"] is False


def test_cuda_graph_runtimes_are_unavailable_on_cpu_with_the_reason(tmp_path):
    r = rtbench.run(runtimes="torch,torch-cudagraph,onnxruntime-cudagraph", sizes=[32], batches=[1], device="cpu",
                    out=tmp_path, policy=FAST, report=False)
    st = {c["runtime"]: (c["status"], c["reason"]) for c in r.cells}
    assert st["torch"][0] == "ok"
    assert st["torch-cudagraph"] == ("unavailable", "runs on cuda only, not cpu")
    assert st["onnxruntime-cudagraph"][0] == "unavailable"


# peaks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,precision,tflops", [
    ("Tesla T4", "fp32", 8.1), ("Tesla V100-SXM2-16GB", "fp16", 125.0), ("NVIDIA A10", "tf32", 62.5),
    ("NVIDIA A100-SXM4-80GB", "tf32", 156.0), ("NVIDIA L4", "fp16", 121.0), ("NVIDIA L40S", "fp32", 91.6),
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 PCIe", "fp32", 51.2), ("NVIDIA H200", "fp16", 989.4),
    ("NVIDIA GeForce RTX 3090", "fp32", 35.6), ("NVIDIA GeForce RTX 4090", "fp16", 165.2),
])
def test_datasheet_table_matches_the_right_gpu(name, precision, tflops):
    assert datasheet_peak(name)[precision] == pytest.approx(tflops * 1e12)


def test_datasheet_table_unknown_gpu_and_missing_precision():
    assert datasheet_peak("Some Future GPU") is None
    assert "tf32" not in datasheet_peak("Tesla T4")  # Turing has no TF32
    assert len(DATASHEET_TFLOPS) >= 10


def test_peak_flops_returns_both_figures():
    peak = {"datasheet": {"fp16": 65e12}, "measured": {"matmul_fp16_flops": 40e12}}
    assert peak_flops(peak, "fp16") == (65e12, 40e12)
    assert peak_flops(peak, "fp32") == (None, None)


# provider checks with the real (CPU) onnxruntime -------------------------------------------------
def test_onnxruntime_cuda_fallback_to_cpu_is_a_failure_not_a_silent_success(tmp_path):
    from rtbench.models import resolve
    from rtbench.runtimes.onnxruntime import OnnxRuntime

    rt = OnnxRuntime(resolve("resnet18"), Sweep(runtimes=("onnxruntime",)), "fp32", tmp_path)
    rt.cuda = True  # ask for the CUDA provider from the CPU-only onnxruntime installed here
    with pytest.raises(RuntimeError, match="fell back to CPUExecutionProvider"):
        rt._inference_session(0, types.SimpleNamespace(cuda_stream=0))


def test_onnxruntime_cpu_session_runs_on_the_cpu_provider_with_torch_threads(tmp_path):
    r = rtbench.run(runtimes="onnxruntime", sizes=[32], batches=[1], device="cpu", out=tmp_path, policy=FAST,
                    report=False)
    info = r.cells[0]["info"]
    assert info["providers"][0] == "CPUExecutionProvider"
    assert info["threads"] == torch.get_num_threads()


def test_cpu_ceiling_is_the_best_of_torch_and_onnxruntime_measured_outside_the_caller():
    import sys

    from rtbench.hardware import peaks

    had_ort = "onnxruntime" in sys.modules
    m = peaks("cpu")["measured"]
    assert m["matmul_fp32_torch_flops"] > 0 and m["matmul_fp32_onnxruntime_flops"] > 0
    assert m["matmul_fp32_flops"] == max(m["matmul_fp32_torch_flops"], m["matmul_fp32_onnxruntime_flops"])
    assert m["copy_bytes_per_s"] > 0
    assert ("onnxruntime" in sys.modules) == had_ort  # measured in a child process
