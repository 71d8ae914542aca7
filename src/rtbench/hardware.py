"""Device facts: the datasheet peak table and the ceilings ``rtbench peak`` measures on the device."""
from __future__ import annotations

import math
import platform
import re
from typing import Callable


# Dense peak TFLOP/s by precision, per product and form factor, from the vendors' datasheets (no sparsity;
# fp16/bf16 with fp32 accumulate, as PyTorch and ONNX Runtime use). A CUDA device name must match a pattern
# whole: "NVIDIA L40" only contains "L4", and a PCIe or NVL card is not its SXM sibling. A name no pattern
# matches (a MIG slice, a variant left out because its figures are not known here) has no datasheet figure.
DATASHEET_TFLOPS: list[tuple[str, str, dict[str, float]]] = [
    ("T4", r"(Tesla|NVIDIA) T4", {"fp32": 8.1, "fp16": 65.0}),
    ("V100 SXM2", r"Tesla V100-SXM2-(16|32)GB", {"fp32": 15.7, "fp16": 125.0}),
    ("V100 PCIe", r"Tesla V100-PCIE-(16|32)GB", {"fp32": 14.0, "fp16": 112.0}),
    ("V100S PCIe", r"Tesla V100S-PCIE-32GB", {"fp32": 16.4, "fp16": 130.0}),
    ("A100", r"NVIDIA A100(-SXM4-(40|80)GB|-PCIE-40GB| 80GB PCIe)",
     {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}),
    ("A10", r"NVIDIA A10", {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0}),
    ("L4", r"NVIDIA L4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0}),
    ("L40", r"NVIDIA L40", {"fp32": 90.5, "tf32": 90.5, "fp16": 181.05, "bf16": 181.05}),
    ("L40S", r"NVIDIA L40S", {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0, "bf16": 362.0}),
    ("H100 SXM", r"NVIDIA H100 80GB HBM3", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("H100 PCIe", r"NVIDIA H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5}),
    ("H100 NVL", r"NVIDIA H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    ("H200 SXM", r"NVIDIA H200", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("H200 NVL", r"NVIDIA H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    ("RTX 3090", r"(NVIDIA )?GeForce RTX 3090", {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0, "bf16": 71.0}),
    ("RTX 4090", r"(NVIDIA )?GeForce RTX 4090", {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2}),
]
NOT_IN_TABLE = "not in the datasheet table"

CEILING = {"seconds": 0.2, "min_calls": 5, "warmup_s": 0.05}  # one block of calls per ceiling (a best rate)
# The matmul ceiling's matrix is sized by time, so a ceiling costs seconds on any device: from 700 TFLOP/s
# (n reaches the cap) down to bf16 emulated on a CPU without bf16 units (0.3 GFLOP/s: n stays near 128).
MATMUL_N_MIN = 64
MATMUL_N_MAX = {"cuda": 8192, "cpu": 4096}
MATMUL_CALL_TARGET_S = 0.1  # one call at the chosen n takes about this long at most
MATMUL_SIZING_BUDGET_S = 1.0  # growing n stops after this long, whatever the calls take


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def datasheet_entry(name: str) -> tuple[str, dict[str, float]] | None:
    """(product, dense peak FLOP/s per precision) for a device name, or None when no pattern matches it whole."""
    for product, pattern, tflops in DATASHEET_TFLOPS:
        if re.fullmatch(pattern, name.strip()):
            return product, {p: v * 1e12 for p, v in tflops.items()}
    return None


def datasheet_peak(name: str) -> dict[str, float] | None:
    """Dense peak FLOP/s per precision for a GPU name, or None when the table does not know it."""
    entry = datasheet_entry(name)
    return entry[1] if entry else None


def datasheet_product(name: str) -> str:
    """The table's product for a device name (e.g. "H100 NVL"), else "not in the datasheet table"."""
    entry = datasheet_entry(name)
    return entry[0] if entry else NOT_IN_TABLE


def best(samples_ms) -> float:
    """A ceiling is the best rate the device reached: the fastest of several calls (the 5th percentile, so one
    timer glitch cannot set it)."""
    import numpy as np

    return float(np.percentile(samples_ms, 5))


def matmul_size(make_call: Callable[[int], Callable[[], object]], clock, n_max: int,
                target_s: float = MATMUL_CALL_TARGET_S, budget_s: float = MATMUL_SIZING_BUDGET_S,
                tries: int = 3):
    """Size a square matmul by time: double n from MATMUL_N_MIN while the next size's call should still take
    under ``target_s``, up to ``n_max``, for at most about ``budget_s`` of sizing.

    The next call is predicted from the last doubling: up to 8x (the work grows as n^3) but less while a fixed
    cost per call dominates (thread wake-ups, a launch). A size's time is the best of up to ``tries`` calls,
    since one call can be slowed by other work on the machine. ``make_call(n)`` allocates the operands and
    returns the call; ``clock`` is a timing clock. Returns ``(n, call)`` for the chosen size.
    """
    t0 = clock.now()
    n, prev = MATMUL_N_MIN, None
    while True:
        call = make_call(n)
        if 2 * n > n_max:
            return n, call
        call()  # the first call at a size pays allocation and the library's kernel choice
        best_s = math.inf
        for _ in range(tries):
            best_s = min(best_s, clock.time(call)[0] / 1e3)
            growth = 1.0 if prev is None else min(8.0, max(1.0, best_s / prev))
            if best_s * growth <= target_s:
                break
        if best_s * growth > target_s or clock.now() - t0 > budget_s:
            return n, call
        n, prev = 2 * n, best_s


def measure_ceilings(device: str, precisions=("fp32",), onnxruntime: bool = True) -> dict:
    """Measured matmul FLOP/s per precision (``matmul_<p>_n``: the matrix size used) and copy bandwidth
    (bytes read + written per second)."""
    import torch

    from rtbench.runtimes.common import set_tf32, sync, torch_dtype
    from rtbench.timing import CudaEventClock, HostClock, measure_once

    cuda = device.startswith("cuda")
    clock = CudaEventClock(torch.cuda.current_stream(device)) if cuda else HostClock()
    out: dict = {"threads": torch.get_num_threads()}
    call = None
    for p in precisions:
        if p == "tf32" and not cuda:
            continue
        set_tf32(p)

        def make_call(n: int, dtype=torch_dtype(p)):
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            return lambda: torch.mm(a, b)

        call = None  # the previous precision's operands are freed before this one's are made
        n, call = matmul_size(make_call, clock, MATMUL_N_MAX["cuda" if cuda else "cpu"])
        x = measure_once(call, clock, **CEILING)
        out[f"matmul_{p}_n"] = n
        out[f"matmul_{p}_flops"] = out[f"matmul_{p}_torch_flops"] = 2 * n ** 3 / (best(x) / 1e3)
    set_tf32("fp32")
    n = out.get("matmul_fp32_n")
    if not cuda and onnxruntime and n and (ort := _onnxruntime_matmul_flops(n, out["threads"])):
        # torch's CPU BLAS can be far from what the cores do (ONNX Runtime's MLAS reached 2x more on one
        # machine): the ceiling is the best of the two, each kept for the record
        out["matmul_fp32_onnxruntime_flops"] = ort
        out["matmul_fp32_flops"] = max(out["matmul_fp32_flops"], ort)
    src = torch.empty(256 * 2 ** 20 if cuda else 64 * 2 ** 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    x = measure_once(lambda: dst.copy_(src), clock, **CEILING)
    out["copy_bytes_per_s"] = 2 * src.numel() / (best(x) / 1e3)
    sync(device)
    del call, src, dst
    if cuda:
        torch.cuda.empty_cache()  # the run's parent keeps no GPU memory while its workers measure
    return out


def _onnxruntime_matmul_flops(n: int, threads: int) -> float | None:
    """fp32 n x n matmul FLOP/s through ONNX Runtime on the CPU (None when it is not installed)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from rtbench.timing import HostClock, measure_once

    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((n, n), dtype=np.float32) for x in "ab"}
    x = measure_once(lambda: sess.run(None, feeds), HostClock(), **CEILING)
    onnx.checker.check_model(model)
    return 2 * n ** 3 / (best(x) / 1e3)


def _ceilings_in_child(device: str, precisions) -> dict:
    """measure_ceilings in a child process (it may import onnxruntime; see rtbench.child)."""
    from rtbench.child import ChildFailed, call_in_child

    try:
        return call_in_child("rtbench.hardware", "measure_ceilings", device, list(precisions))
    except ChildFailed as e:  # torch's figures alone, measured here, rather than none
        return measure_ceilings(device, precisions, onnxruntime=False) | {"child_error": str(e)}


def peaks(device: str, precisions=("fp32",), measure: bool = True) -> dict:
    """Everything utilisation needs: device name, datasheet peaks (None for a device not in the table, with
    ``datasheet_product`` saying so) and measured ceilings."""
    name = device_name(device)
    res = {"device": device, "name": name, "datasheet": datasheet_peak(name),
           "datasheet_product": datasheet_product(name)}
    if measure:
        cuda = device.startswith("cuda")
        res["measured"] = measure_ceilings(device, precisions) if cuda else _ceilings_in_child(device, precisions)
    return res


def peak_flops(peak: dict, precision: str) -> tuple[float | None, float | None]:
    """(datasheet, measured) peak FLOP/s for the precision that ran."""
    sheet = (peak.get("datasheet") or {}).get(precision)
    meas = (peak.get("measured") or {}).get(f"matmul_{precision}_flops")
    return sheet, meas
