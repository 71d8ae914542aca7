"""The runtime contract the base class enforces, and equal work at the end-to-end boundary (real CPU runtimes)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import rtbench
from policies import FAST
from rtbench import parity
from rtbench.models import resolve
from rtbench.runtimes import base
from rtbench.runtimes.base import Unsupported
from rtbench.runtimes.common import make_input
from rtbench.spec import Cell, Sweep
from tests.conftest import gpu

TESTS = Path(__file__).resolve().parent
MODEL = "entry_models:tiny_cnn"


@pytest.fixture(autouse=True)
def _entry_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.mark.parametrize("runtime,precision,allowed", [
    ("onnxruntime", "bf16", "fp32, tf32, fp16"),
    ("openvino", "tf32", "fp32, fp16, bf16"),
    ("onnxruntime-tensorrt", "fp32", "tf32, fp16"),
])
def test_undeclared_precisions_are_refused_in_one_wording_before_any_export(tmp_path, runtime, precision, allowed):
    cls = base.get(runtime)
    sweep = Sweep(model=MODEL, runtimes=(runtime,), device="cpu")
    with pytest.raises(Unsupported) as e:
        cls(resolve(MODEL), sweep, precision, tmp_path)
    assert str(e.value).startswith(f"{runtime} runs {allowed}, not {precision}")
    assert not (tmp_path / "cache").exists()  # refused before the ONNX export


@pytest.mark.parametrize("runtime", ["torch-cudagraph", "onnxruntime-cudagraph"])
def test_graph_runtimes_refuse_the_end_to_end_boundary_before_any_work(tmp_path, runtime):
    # checked before the module goes to the GPU or the model is exported, so it holds on a machine without one
    sweep = Sweep(model=MODEL, runtimes=(runtime,), device="cuda", boundary="end-to-end")
    with pytest.raises(Unsupported, match="^CUDA graphs need inputs already on the GPU: use the compute boundary$"):
        base.get(runtime)(resolve(MODEL), sweep, "fp32", tmp_path)
    assert not (tmp_path / "cache").exists()


def test_settings_are_applied_by_a_method_that_says_so(tmp_path):
    torch.backends.cudnn.benchmark = False
    sweep = Sweep(model=MODEL, runtimes=("torch",), device="cpu")
    rt = base.get("torch")(resolve(MODEL), sweep, "fp32", tmp_path)
    assert not hasattr(rt, "info")  # no getter that changes global state
    assert rt.apply_settings()["cudnn_benchmark"] is True and torch.backends.cudnn.benchmark is True
    s = rt.session(Cell(MODEL, "torch", "fp32", 32, 1, "cpu"), make_input(1, 32))
    assert s.info["cudnn_benchmark"] is True and s.info["tf32"] is False and s.stream is None


needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
END_TO_END = [("torch", "fp32", "cpu"), ("torch", "bf16", "cpu"), ("onnxruntime", "fp32", "cpu"),
              pytest.param("openvino", "fp32", "cpu", marks=needs_openvino)] + [
    pytest.param(rt, p, "cuda", marks=gpu) for rt, p in (("torch", "fp32"), ("torch", "fp16"), ("onnxruntime", "fp32"),
                                                         ("onnxruntime", "fp16"), ("torch-compile", "fp32"))]


@pytest.mark.parametrize("runtime,precision,device", END_TO_END)
def test_end_to_end_call_reads_the_host_array_and_returns_fp32_host_outputs(tmp_path, runtime, precision, device):
    """Every conversion is inside the timed call: it reads the fp32 host array itself, and fetch converts nothing."""
    model = resolve(MODEL)
    sweep = Sweep(model=MODEL, runtimes=(runtime,), device=device, boundary="end-to-end")
    rt = base.get(runtime)(model, sweep, precision, tmp_path)
    x = make_input(2, 32)
    s = rt.session(Cell(MODEL, runtime, precision, 32, 2, device, "end-to-end"), x)
    assert (s.stream is None) == (device == "cpu")
    s.call()
    first = s.fetch().copy()
    x.copy_(make_input(3, 32)[:2])  # new contents in the same host array, after the session was made
    s.call()
    y = s.fetch()
    assert parity.check(y, parity.reference(model, x, device), precision)["max_rel"] <= parity.TOLERANCE[precision]
    assert not np.allclose(y, first)  # the call read the new contents, not a copy made beforehand
    assert type(y) is np.ndarray and y.dtype == np.float32
    assert s.fetch() is y  # what the call produced, not a conversion made by fetch


def onnx_file_with_fixed_batch(path: Path, batch: int) -> Path:
    torch.onnx.export(resolve(MODEL).module, (torch.randn(batch, 3, 32, 32),), str(path), input_names=["pixels"],
                      output_names=["logits"], dynamic_axes={"pixels": {2: "h", 3: "w"}}, opset_version=17,
                      dynamo=False)
    return path


@needs_openvino
def test_an_onnx_file_with_a_fixed_batch_is_unsupported_at_other_batches_in_every_runtime(tmp_path):
    path = onnx_file_with_fixed_batch(tmp_path / "batch1.onnx", 1)
    run = rtbench.run(model=str(path), runtimes="onnxruntime,openvino", sizes=[32], batches=[1, 4], device="cpu",
                      out=tmp_path / "out", policy=FAST, report=False)
    df = run.to_pandas().set_index(["runtime", "batch"])
    for runtime in ("onnxruntime", "openvino"):
        assert df.loc[(runtime, 1)].status == "ok", df.loc[(runtime, 1)].reason
        assert df.loc[(runtime, 4)].status == "unsupported"
        assert df.loc[(runtime, 4)].reason == ("the ONNX file fixes the batch at 1, so batch 4 cannot run: "
                                                "export it with a dynamic batch dimension")


def test_onnxruntime_cpu_sessions_of_a_process_share_one_thread_pool(tmp_path):
    """A session per cell with a pool of its own adds threads that spin beside the next session's (2-5x slower
    calls when sessions alternate, benchmarks/results/ort-thread-pools-cpu.md); on a CPU every session of the
    worker runs on one pool of the group's thread count. In a child process: the pool is process-wide."""
    import json
    import subprocess
    import sys

    code = f"""
import json, os, sys, torch
sys.path.insert(0, {str(TESTS)!r})
torch.set_num_threads(2)
from rtbench.models import resolve
from rtbench.runtimes import base
from rtbench.runtimes.common import make_input
from rtbench.spec import Cell, Sweep
rt = base.get("onnxruntime")(resolve({MODEL!r}), Sweep(model={MODEL!r}, runtimes=("onnxruntime",), device="cpu"),
                             "fp32", {str(tmp_path)!r})
threads, infos = [], []
for b in (1, 2, 4):
    s = rt.session(Cell({MODEL!r}, "onnxruntime", "fp32", 32, b, "cpu"), make_input(b, 32))
    s.call()
    threads.append(len(os.listdir("/proc/self/task")))
    infos.append(s.info)
print(json.dumps({{"threads": threads, "infos": infos}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(set(got["threads"])) == 1, got["threads"]  # no thread pool per session: the process's threads stay
    assert all(i["threads"] == 2 and i["shared_thread_pool"] is True for i in got["infos"])
