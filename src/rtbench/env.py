"""The environment fingerprint stored with every run and printed by ``rtbench env``.

Without a GPU, or without NVML, the GPU entries say "not available" with the reason, and the CPU part
(model, cores, threads) is still complete.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import rtbench

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
            "CUDA_DEVICE_ORDER", "CUDA_LAUNCH_BLOCKING", "CUDA_MODULE_LOADING", "CUBLAS_WORKSPACE_CONFIG",
            "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "TORCH_CUDNN_V8_API_ENABLED",
            "PYTORCH_CUDA_ALLOC_CONF", "ONEDNN_DEFAULT_FPMATH_MODE", "OPENBLAS_CORETYPE", "KMP_AFFINITY",
            "OMP_PROC_BIND")
DISTRIBUTIONS = ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "timm", "numpy",
                 "nvidia-ml-py", "tensorrt", "torch-tensorrt")


def git_commit() -> str | None:
    """The commit of the checkout rtbench runs from (with ``-dirty`` when it has changes), else None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=10"],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def packages() -> dict:
    """Versions of the packages that decide what runs (None when not installed)."""
    import importlib.metadata as md

    out = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def _openvino() -> dict:
    """OpenVINO's CPU facts (its default inference precision decides whether fp32 must be forced)."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return {}
    try:
        from rtbench.runtimes.openvino import cpu_facts

        return {"openvino": cpu_facts()}
    except Exception as e:  # noqa: BLE001 - the fingerprint never fails a run
        return {"openvino": {"error": f"{type(e).__name__}: {e}"[:200]}}


def cpu_info() -> dict:
    """CPU model, logical cores, the cores this process may use, and torch's thread settings."""
    import torch

    from rtbench.hardware import cpu_model

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "cpu_cores_usable": usable,
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def nvml_info(device: str = "cpu", nvml=None) -> dict:
    """The driver's view of the GPUs (NVML): driver and CUDA driver versions, each GPU, who else uses ours."""
    from rtbench import telemetry

    n, why = telemetry.load_nvml(nvml)
    if n is None:
        return {"available": False, "reason": why}
    q = telemetry.query  # one NVML query, None when unsupported
    cuda = q(n.nvmlSystemGetCudaDriverVersion)
    out: dict = {"available": True, "driver": _str(q(n.nvmlSystemGetDriverVersion)),
                 "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
                 "count": q(n.nvmlDeviceGetCount) or 0, "gpus": []}
    for i in range(out["count"]):
        h = q(n.nvmlDeviceGetHandleByIndex, i)
        if h is None:
            continue
        mem = q(n.nvmlDeviceGetMemoryInfo, h)
        limit = q(n.nvmlDeviceGetEnforcedPowerLimit, h)
        out["gpus"].append({
            "index": i, "name": _str(q(n.nvmlDeviceGetName, h)), "uuid": _str(q(n.nvmlDeviceGetUUID, h)),
            "memory_total_mib": mem.total // 2**20 if mem is not None else None,
            "power_limit_w": limit / 1e3 if limit is not None else None,
            "sm_clock_max_mhz": q(n.nvmlDeviceGetMaxClockInfo, h, getattr(n, "NVML_CLOCK_SM", 1)),
            "mem_clock_max_mhz": q(n.nvmlDeviceGetMaxClockInfo, h, getattr(n, "NVML_CLOCK_MEM", 2)),
            "persistence_mode": q(n.nvmlDeviceGetPersistenceMode, h),
        })
    if device.startswith("cuda"):
        try:
            out["device_processes"] = telemetry.compute_processes(n, telemetry.device_handle(n, device))
        except Exception as e:  # noqa: BLE001 - a fingerprint never fails a run
            out["device_processes"] = None
            out["device_processes_error"] = telemetry.error_text(e)
    return out


def torch_gpu_info(device: str) -> dict:
    """CUDA, cuDNN and TF32 as torch sees them; the GPU model, count and datasheet row, or 'not available'."""
    import torch

    from rtbench.hardware import datasheet_product

    out = {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None, "cuda_available": torch.cuda.is_available(),
           # process defaults when the fingerprint is taken; each cell's info records the flags it ran with
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if not torch.cuda.is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU visible to torch"
        out.update(gpu=f"not available: {why}", gpu_count=0)
        return out
    idx = (torch.device(device).index or 0) if device.startswith("cuda") else 0
    name = torch.cuda.get_device_name(idx)
    out.update(gpu=name, gpu_count=torch.cuda.device_count(),
               gpu_capability=".".join(map(str, torch.cuda.get_device_capability(idx))),
               gpu_datasheet=datasheet_product(name))  # the load % datasheet row, or "not in the datasheet table"
    return out


def onnxruntime_providers() -> list[str] | None:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:  # noqa: BLE001 - not installed or broken: the packages entry says which
        return None


def _native_inproc() -> dict:
    return {"onnxruntime_providers": onnxruntime_providers(), **_openvino()}


def native_facts() -> dict:
    """ONNX Runtime's providers and OpenVINO's CPU facts, read in a child process (see rtbench.child)."""
    from rtbench.child import ChildFailed, call_in_child

    try:
        return call_in_child("rtbench.env", "_native_inproc", timeout=120)
    except ChildFailed as e:
        return {"native_facts_error": str(e)}


def fingerprint(device: str = "cpu") -> dict:
    """Versions, hardware and settings that decide what a number means."""
    import torch

    fp = {
        "rtbench": rtbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **cpu_info(),
        "torch": torch.__version__,
        "packages": packages(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "device": device,
        **torch_gpu_info(device),
        "nvml": nvml_info(device),
        **native_facts(),
        "executable": sys.executable,
    }
    return fp
