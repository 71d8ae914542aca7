"""GPU checks of the runtime contract (skipped without CUDA): ONNX Runtime on the session stream, graph parity."""
from __future__ import annotations

import numpy as np
import pytest

from rtbench import parity
from rtbench.models import resolve
from rtbench.runtimes import base
from rtbench.runtimes.common import make_input
from rtbench.spec import Cell, Sweep
from tests.conftest import gpu

pytestmark = [gpu]


def session(tmp_path, runtime, x, precision="fp32"):
    """A real session of ``runtime`` for resnet18 at x's shape on the GPU, and its runtime."""
    sweep = Sweep(runtimes=(runtime,), device="cuda", sizes=(x.shape[-1],), batches=(x.shape[0],))
    rt = base.get(runtime)(resolve("resnet18"), sweep, precision, tmp_path)
    return rt.session(Cell("resnet18", runtime, precision, x.shape[-1], x.shape[0], "cuda"), x), rt


def test_onnxruntime_runs_its_kernels_on_the_session_stream(tmp_path):
    import torch

    s, rt = session(tmp_path, "onnxruntime", make_input(2, 64))
    assert s.stream.cuda_stream != 0 and torch.cuda.current_stream() == s.stream
    ort_sess = rt._inference_session()  # the group's session, made with the stream's handle
    x = torch.randn(2, 3, 64, 64, device="cuda")
    y = torch.empty(2, 1000, device="cuda")
    b = ort_sess.io_binding()
    b.bind_input("input", "cuda", 0, np.float32, list(x.shape), x.data_ptr())
    b.bind_output("output", "cuda", 0, np.float32, list(y.shape), y.data_ptr())
    ort_sess.run_with_iobinding(b)
    torch.cuda.synchronize()
    torch.cuda._sleep(2**28)  # ~0.1 s of GPU time on the session stream (the current one)...
    y.fill_(float("nan"))  # ...then NaN in the output
    ort_sess.run_with_iobinding(b)
    torch.cuda.synchronize()
    # on its own stream ORT would have finished long before the sleep did, and the NaN would remain
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("runtime", ["torch-cudagraph", "onnxruntime-cudagraph"])
def test_graph_parity_reads_what_a_replay_wrote(tmp_path, runtime):
    import torch

    x = make_input(2, 64)
    s, _ = session(tmp_path, runtime, x)
    assert np.isnan(s.fetch()).all()  # nothing the warm-up runs wrote is left in the static output
    s.call()
    torch.cuda.synchronize()
    assert parity.check(s.fetch(), parity.reference(resolve("resnet18"), x, "cuda"), "fp32")["ok"]
