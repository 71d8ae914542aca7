"""What of the GPU issue can be tested without a GPU: precisions, boundaries, parity, peaks, provider checks."""
from __future__ import annotations

import re
import types

import pytest
import torch

import rtbench
from rtbench import hardware, parity
from rtbench.hardware import DATASHEET_TFLOPS, datasheet_peak, peak_flops
from rtbench.results import ran_precision
from rtbench.runtimes.base import Unsupported, check_device_precision
from rtbench.runtimes.common import set_tf32, torch_dtype
from rtbench.spec import Sweep
from policies import FAST



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


def test_the_tune_tries_freezing_torch_compile_on_a_gpu_only():
    from rtbench.runtimes import base

    gpu, cpu = base.get("torch-compile").search_space("cuda:0"), base.get("torch-compile").search_space("cpu")
    assert gpu["freezing"] == ("on", "off") and gpu["compile_mode"] == ("default", "max-autotune", "reduce-overhead")
    assert "freezing" not in cpu and cpu["compile_mode"] == ("default",)
    assert "freezing" not in base.get("torch").search_space("cuda:0")  # eager torch has no such setting


@pytest.mark.slow
def test_a_frozen_compile_folds_the_weights_in_and_still_matches_eager(tmp_path):
    """freezing=on: inductor compiles the weights in as constants; the cell records it and passes parity."""
    run = rtbench.run(model="entry_models:tiny_cnn", runtimes=["torch-compile[freezing=on]"], sizes=[32],
                      batches=[2], device="cpu", policy=FAST, out=tmp_path, report=False)
    (c,) = run.cells
    assert c.status == "ok", c.reason
    assert c.info["freezing"] is True and c.info["compile_mode"] == "default"
    assert c.parity["verdict"] == "ok" and c.parity["top1_agree"] == 1.0


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
        check_device_precision("cpu", "tf32")
    check_device_precision("cpu", "bf16")  # bf16 runs on CPUs


def test_utilisation_uses_the_precision_that_ran():
    assert ran_precision("fp32", {"tf32": True}) == "tf32"
    assert ran_precision("fp32", {"tf32": False}) == "fp32"
    assert ran_precision("fp16", {}) == "fp16"


def test_cpu_sweep_records_unsupported_precisions_and_goes_on(tmp_path):
    r = rtbench.run(runtimes="torch,onnxruntime", precision="fp32,tf32,bf16", sizes=[32], batches=[1],
                    device="cpu", out=tmp_path, policy=FAST, report=False)
    st = {(c.cell.runtime, c.cell.precision): (c.status, c.reason) for c in r.cells}
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
            assert c.status == "ok", c.reason
            assert c.cell.boundary == boundary
            infos[(c.cell.runtime, boundary)] = c.info
    assert infos[("onnxruntime", "compute")]["io_binding"] is True
    assert infos[("onnxruntime", "end-to-end")]["io_binding"] is False


def test_cuda_graph_runtimes_are_unavailable_on_cpu_with_the_reason(tmp_path):
    r = rtbench.run(runtimes="torch,torch-cudagraph,onnxruntime-cudagraph", sizes=[32], batches=[1], device="cpu",
                    out=tmp_path, policy=FAST, report=False)
    st = {c.cell.runtime: (c.status, c.reason) for c in r.cells}
    assert st["torch"][0] == "ok"
    assert st["torch-cudagraph"] == ("unavailable", "runs on cuda only, not cpu")
    assert st["onnxruntime-cudagraph"][0] == "unavailable"


# peaks -----------------------------------------------------------------------------------------
# (CUDA device name, the table's product, a precision, its dense datasheet TFLOP/s)
KNOWN_GPUS = [
    ("Tesla T4", "T4", "fp32", 8.1), ("Tesla V100-SXM2-16GB", "V100 SXM2", "fp16", 125.0),
    ("Tesla V100-PCIE-32GB", "V100 PCIe", "fp32", 14.0), ("Tesla V100S-PCIE-32GB", "V100S PCIe", "fp16", 130.0),
    ("NVIDIA A10", "A10", "tf32", 62.5), ("NVIDIA A100-SXM4-80GB", "A100", "tf32", 156.0),
    ("NVIDIA A100 80GB PCIe", "A100", "bf16", 312.0), ("NVIDIA L4", "L4", "fp16", 121.0),
    ("NVIDIA L40", "L40", "fp16", 181.05), ("NVIDIA L40S", "L40S", "fp32", 91.6),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", "bf16", 989.4), ("NVIDIA H100 PCIe", "H100 PCIe", "fp32", 51.0),
    ("NVIDIA H100 NVL", "H100 NVL", "bf16", 835.5), ("NVIDIA H200", "H200 SXM", "fp16", 989.4),
    ("NVIDIA H200 NVL", "H200 NVL", "tf32", 417.5), ("NVIDIA GeForce RTX 3090", "RTX 3090", "fp32", 35.6),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", "fp16", 165.2),
]


@pytest.mark.parametrize("name,product,precision,tflops", KNOWN_GPUS)
def test_datasheet_table_matches_the_right_gpu(name, product, precision, tflops):
    assert datasheet_peak(name)[precision] == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize("name,product,precision,tflops", KNOWN_GPUS)
def test_each_known_gpu_matches_one_row_of_the_table(name, product, precision, tflops):
    rows = [p for p, pattern, _ in DATASHEET_TFLOPS if re.fullmatch(pattern, name)]
    assert rows == [product]
    assert hardware.datasheet_product(name) == product


@pytest.mark.parametrize("name", [
    "Quadro T4000", "NVIDIA T400", "NVIDIA T400 4GB", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "NVIDIA A10G",
    "NVIDIA A40", "NVIDIA GeForce RTX 3090 Ti", "NVIDIA GeForce RTX 4090 D", "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
    "Some Future GPU", "AMD EPYC 7B13",
])
def test_a_name_the_table_does_not_know_gets_no_datasheet_figure(name):
    """A name that contains a product's name is not that product (the table matched substrings once)."""
    assert datasheet_peak(name) is None
    assert hardware.datasheet_product(name) == "not in the datasheet table"


def test_datasheet_table_missing_precision():
    assert "tf32" not in datasheet_peak("Tesla T4")  # Turing has no TF32


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
    rt.stream = types.SimpleNamespace(cuda_stream=1)
    with pytest.raises(RuntimeError, match="fell back to CPUExecutionProvider"):
        rt._inference_session()


def test_onnxruntime_cpu_session_runs_on_the_cpu_provider_with_torch_threads(tmp_path):
    r = rtbench.run(runtimes="onnxruntime", sizes=[32], batches=[1], device="cpu", out=tmp_path, policy=FAST,
                    report=False)
    info = r.cells[0].info
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
