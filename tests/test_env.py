"""The environment fingerprint: every key present; GPU parts 'not available' here; NVML facts via a fake."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fake_nvml import FakeNVML
from rtbench import env, telemetry

KEYS = ("rtbench", "git_commit", "python", "platform", "cpu", "cpu_cores", "cpu_cores_usable", "torch_threads",
        "torch", "packages", "env", "device", "cuda", "cudnn", "cuda_available", "tf32_matmul", "tf32_cudnn",
        "gpu", "gpu_count", "nvml", "onnxruntime_providers")


def test_fingerprint_has_every_key(monkeypatch):
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    fp = env.fingerprint("cpu")
    for k in KEYS:
        assert k in fp, k
    for dist in ("torch", "onnx", "onnxruntime", "openvino", "nvidia-ml-py"):
        assert dist in fp["packages"]
    assert fp["env"]["NVIDIA_TF32_OVERRIDE"] == "0" and fp["env"]["OMP_NUM_THREADS"] == "2"
    assert fp["cpu_cores"] >= 1 and 1 <= fp["cpu_cores_usable"] <= fp["cpu_cores"]
    assert fp["torch_threads"] >= 1 and fp["cpu"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # a checkout (a copied tree has no commit)
        assert fp["git_commit"]
    json.dumps(fp)  # storable as it is


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the no-GPU fingerprint cannot be seen")
def test_without_a_gpu_the_gpu_parts_say_not_available():
    fp = env.fingerprint("cpu")
    assert fp["gpu"].startswith("not available:") and fp["gpu_count"] == 0 and fp["cuda_available"] is False
    if telemetry.load_nvml()[0] is None:
        assert fp["nvml"]["available"] is False and fp["nvml"]["reason"].startswith("not available:")


def test_nvml_facts_from_a_fake_driver(monkeypatch):
    monkeypatch.setattr(telemetry, "_holds_context", lambda: False)
    info = env.nvml_info("cuda:0", nvml=FakeNVML(procs=[[(4242, 2**30)]]))
    assert info["available"] is True and info["driver"] == "550.54.15" and info["cuda_driver"] == "12.4"
    assert info["count"] == 2 and len(info["gpus"]) == 2
    g = info["gpus"][0]
    assert g["name"] == "NVIDIA H200" and g["memory_total_mib"] == 80 * 1024 and g["power_limit_w"] == 700.0
    assert g["sm_clock_max_mhz"] == 1980 and g["uuid"] == "GPU-handle-0"
    assert info["device_processes"]["others"] == [{"pid": 4242, "used_mib": 1024.0}]
    assert "device_processes" not in env.nvml_info("cpu", nvml=FakeNVML())


def test_rtbench_env_prints_the_fingerprint(cli):
    r = cli("env", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    fp = json.loads(r.stdout)
    assert fp["device"] == "cpu" and fp["cpu"] and "nvml" in fp and "gpu" in fp
    if not torch.cuda.is_available():
        assert fp["gpu"].startswith("not available")


@pytest.mark.parametrize("name, row", [("NVIDIA L40", "L40"), ("NVIDIA H100 NVL", "H100 NVL"),
                                       ("Quadro T4000", "not in the datasheet table")])
def test_the_fingerprint_names_the_gpus_datasheet_row(monkeypatch, name, row):
    """What `rtbench env` and every run record: the datasheet row load % is measured against, or that there is none."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: name)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: (8, 9))
    info = env.torch_gpu_info("cuda:0")
    assert info["gpu"] == name and info["gpu_datasheet"] == row
