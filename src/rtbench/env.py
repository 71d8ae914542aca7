"""The environment fingerprint stored with every run and printed by ``rtbench env``."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import rtbench

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
            "CUBLAS_WORKSPACE_CONFIG", "NVIDIA_TF32_OVERRIDE", "TORCH_CUDNN_V8_API_ENABLED",
            "ONEDNN_DEFAULT_FPMATH_MODE", "OPENBLAS_CORETYPE")


def git_commit() -> str | None:
    """The commit of the checkout rtbench runs from, when it runs from one."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def packages() -> dict:
    """Versions of the packages that decide what runs (None when not installed)."""
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "timm", "numpy"):
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


def fingerprint(device: str = "cpu") -> dict:
    """Versions, hardware and settings that decide what a number means."""
    import torch

    from rtbench.hardware import cpu_model

    fp = {
        "rtbench": rtbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "packages": packages(),
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        idx = torch.device(device).index or 0 if device.startswith("cuda") else 0
        fp.update({
            "gpu": torch.cuda.get_device_name(idx),
            "gpu_count": torch.cuda.device_count(),
            "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(idx))),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        })
    fp.update(_openvino())
    fp["executable"] = sys.executable
    return fp
