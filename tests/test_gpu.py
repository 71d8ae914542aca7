"""GPU paths, on a real CUDA device (skipped without one): every runtime, boundary and precision."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import rtbench
from policies import FAST as CPU_FAST
from tests.conftest import gpu

pytestmark = [gpu]
HOST_TOLERANCE_MS = 0.002  # CUDA events resolve about 0.5 us
FAST = replace(CPU_FAST, warmup_min_calls=3, warmup_min_s=0.05, warmup_max_s=0.5, rounds=3, max_rounds=3,
               block_s=0.05, max_block_s=0.05, rewarm_s=0.01)


def sweep(tmp_path, runtimes, precision="fp32", boundary="compute", **kw):
    r = rtbench.run(runtimes=runtimes, precision=precision, sizes=[64], batches=[2], device="cuda",
                    boundary=boundary, out=tmp_path, policy=FAST, report=False, **kw)
    return r.to_pandas().set_index(["runtime", "precision"])


@pytest.mark.parametrize("boundary", ["compute", "end-to-end"])
def test_eager_and_onnxruntime_fp32_use_cuda_events_and_match(tmp_path, boundary):
    df = sweep(tmp_path, "torch,onnxruntime", boundary=boundary)
    for rt in ("torch", "onnxruntime"):
        row = df.loc[(rt, "fp32")]
        assert row.status == "ok", row.reason
        assert row.clock == "cuda-events"
        assert row.parity_max_rel < 1e-3
    cells = rtbench.load(rtbench.results.list_runs(tmp_path)[0]["id"], tmp_path).cells
    for c in cells:
        # per call, the host time brackets the CUDA events (started before the start event is recorded, read
        # after the end event completed): never shorter, but for the events' resolution (~0.5 us)
        events, host = c.samples_ms, c.host_ms
        assert len(events) == len(host) > 0
        short = events - host
        assert short.max() <= HOST_TOLERANCE_MS, (c.label, short.max(), int((short > HOST_TOLERANCE_MS).sum()))
        # the launch time (until the call returned) ends inside the host time
        assert len(c.launch_ms) == len(events) and np.all(c.launch_ms <= host + 1e-6)
        assert 0 < c.stats["launch"]["ratio"]
        if c.cell.runtime == "onnxruntime":  # its Run waits for the GPU: the launch time is the GPU time
            assert c.stats["launch_bound"] is None and c.info["call_waits_for_gpu"] is True
        else:
            assert isinstance(c.stats["launch_bound"], bool)
    ort = next(c for c in cells if c.cell.runtime == "onnxruntime")
    assert ort.info["providers"][0] == "CUDAExecutionProvider"
    assert ort.info["io_binding"] == (boundary == "compute")


def test_strict_fp32_turns_tf32_off_and_tf32_on(tmp_path):
    df = sweep(tmp_path, "torch", precision="fp32,tf32")
    cells = {c.cell.precision: c for c in rtbench.load(rtbench.results.list_runs(tmp_path)[0]["id"], tmp_path).cells}
    assert cells["fp32"].info["tf32"] is False
    assert cells["tf32"].info["tf32"] is True
    assert df.loc[("torch", "tf32")].status == "ok"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precisions_within_tolerance(tmp_path, precision):
    if precision == "fp16":  # a dependency of rtbench the GPU machine may lack; ONNX Runtime's fp16 cell is unsupported without it
        pytest.importorskip("onnxconverter_common", reason="fp16 ONNX needs onnxconverter-common")
    df = sweep(tmp_path, "torch,onnxruntime", precision=precision)
    assert df.loc[("torch", precision)].status == "ok"
    ort = df.loc[("onnxruntime", precision)]
    assert ort.status == ("ok" if precision == "fp16" else "unsupported")


def test_cuda_graph_rows(tmp_path):
    df = sweep(tmp_path, "torch,torch-cudagraph,onnxruntime-cudagraph")
    for rt in ("torch-cudagraph", "onnxruntime-cudagraph"):
        assert df.loc[(rt, "fp32")].status == "ok", df.loc[(rt, "fp32")].reason
        assert df.loc[(rt, "fp32")].parity_max_rel < 1e-3


def test_each_cuda_graph_of_a_group_replays_its_own_static_input(tmp_path):
    # several cells of one group: each later capture empties the allocator's cache, so a graph whose static input
    # was freed would read unmapped memory (an illegal memory access) or another cell's data (a parity failure)
    r = rtbench.run(runtimes="torch-cudagraph", sizes=[64], batches=[1, 2, 4], device="cuda", out=tmp_path,
                    policy=FAST, report=False)
    cells = r.cells
    assert sorted(c.cell.batch for c in cells) == [1, 2, 4]
    for c in cells:
        assert c.status.value == "ok", (c.cell.batch, c.reason)
        assert c.parity["max_rel"] < 1e-3, (c.cell.batch, c.parity)


def test_torch_compile_compiles_and_matches(tmp_path):
    df = sweep(tmp_path, "torch-compile", options={"compile_mode": "default"})
    row = df.loc[("torch-compile", "fp32")]
    assert row.status == "ok", row.reason
    assert row.first_call_ms > 10 * row.ms  # compile happened in setup, not in the timed loop


def test_real_cuda_oom_is_recorded_and_larger_batches_skipped(tmp_path):
    # 1536 images of 1024 px: ~19 GB of input, >200 GB of activations in the first layers
    r = rtbench.run(runtimes="torch", sizes=[1024], batches=[1, 1536, 2048], device="cuda", out=tmp_path,
                    policy=FAST, report=False)
    st = {c.cell.batch: (c.status, c.reason) for c in r.cells}
    assert st[1][0] == "ok"
    assert st[1536][0] == "oom"
    assert st[2048] == ("skipped", "skipped (oom at batch 1536)")


def test_eager_batch_1_is_launch_bound_and_a_cuda_graph_is_not(tmp_path):
    """ResNet18 at 64 px, batch 1: eager torch waits on the host to enqueue ~60 kernels; a replayed graph does not."""
    r = rtbench.run(runtimes="torch,torch-cudagraph", sizes=[64], batches=[1], device="cuda", out=tmp_path,
                    policy=FAST, report=False)
    by = {c.cell.runtime: c for c in r.cells}
    assert by["torch"].stats["launch_bound"] is True, by["torch"].stats["launch"]
    assert by["torch-cudagraph"].stats["launch_bound"] is False, by["torch-cudagraph"].stats["launch"]


def test_peak_measures_every_precision():
    from rtbench.hardware import peaks

    p = peaks("cuda:0", ("fp32", "tf32", "fp16", "bf16"))
    m = p["measured"]
    assert m["matmul_fp16_flops"] > m["matmul_fp32_flops"] > 0
    assert m["copy_bytes_per_s"] > 1e11
