"""PyTorch runtimes: eager (the baseline), eager replayed from a CUDA graph, and torch.compile."""
from __future__ import annotations

import copy
import time

from rtbench.runtimes.base import Runtime, Session, Unsupported, register
from rtbench.runtimes.common import check_precision, set_tf32, to_numpy, torch_dtype


@register
class TorchEager(Runtime):
    """``torch``: the module in eager mode under ``inference_mode``."""

    name = "torch"
    package = "torch"
    graph = False  # replay one CUDA graph per call instead of launching kernels

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        import torch

        check_precision(self.device, precision)
        self.dtype = torch_dtype(precision)
        self.channels_last = (sweep.option("channels_last", "auto") == "on"
                              or (sweep.option("channels_last", "auto") == "auto" and self.device.startswith("cuda")))
        t0 = time.perf_counter()
        m = copy.deepcopy(model.module).to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            m = m.to(memory_format=torch.channels_last)
        self.module = self.wrap(m)
        self.setup["module_to_device_s"] = time.perf_counter() - t0

    def wrap(self, module):
        """Hook for subclasses (torch.compile)."""
        return module

    def info(self) -> dict:
        """Apply this group's global settings (TF32, cuDNN autotuner) and say what they are."""
        import torch

        # the cuDNN autotuner picks conv algorithms per shape on the first call (setup), as ONNX Runtime's
        # EXHAUSTIVE search does; without it some shapes get far slower heuristic choices
        torch.backends.cudnn.benchmark = self.sweep.option("cudnn_benchmark", "on") == "on"
        return {"threads": torch.get_num_threads(), "channels_last": self.channels_last,
                "tf32": set_tf32(self.precision), "dtype": str(self.dtype).replace("torch.", ""),
                "cudnn_benchmark": torch.backends.cudnn.benchmark}

    def session(self, cell, x) -> Session:
        import torch

        if cell.boundary == "end-to-end" and self.graph:
            raise Unsupported("CUDA graphs need inputs already on the GPU: use the compute boundary")
        info = self.info()
        dev = torch.device(self.device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        xd = x.to(device=dev, dtype=self.dtype).contiguous(memory_format=fmt)
        host_in = x.pin_memory() if dev.type == "cuda" and cell.boundary == "end-to-end" else x
        out: list = [None]
        m = self.module

        if cell.boundary == "compute":
            def call():
                with torch.inference_mode():
                    out[0] = m(xd)
        else:
            def call():  # host tensor in, host tensor out: copies inside the timed region
                with torch.inference_mode():
                    xi = host_in.to(device=dev, dtype=self.dtype, non_blocking=True).contiguous(memory_format=fmt)
                    out[0] = m(xi).cpu()

        stream = torch.cuda.current_stream(dev) if dev.type == "cuda" else None
        if self.graph:
            call = self._capture(call, dev)
            info["cuda_graph"] = True
        return Session(call=call, fetch=lambda: to_numpy(out[0]), stream=stream, info=info)

    @staticmethod
    def _capture(call, dev):
        """Capture ``call`` (whose tensors are static) in one CUDA graph; calls then replay it."""
        import torch

        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream before capture, as CUDA graphs require
                call()
        torch.cuda.current_stream(dev).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            call()
        return g.replay


@register
class TorchCudaGraph(TorchEager):
    """``torch-cudagraph``: eager torch captured once in a CUDA graph and replayed (launch cost removed)."""

    name = "torch-cudagraph"
    devices = ("cuda",)
    graph = True
    default = False


@register
class TorchCompile(TorchEager):
    """``torch-compile``: torch.compile per shape (compile time is setup); a fallback to eager is a failure.

    Mode ``default`` unless the sweep asks for another (--compile-mode). On the H200, ResNet18 fp16 224 px
    batch 16 compiled in 4.1 s and ran in 0.99 ms with it, against 90 s and 1.14 ms with
    max-autotune-no-cudagraphs (benchmarks/results/h200-2026-11-28/compile-modes.md).
    """

    name = "torch-compile"

    @classmethod
    def is_default(cls, device: str) -> bool:
        # ~4-7 s per shape on the H200; 7-24 s per shape on a 2-core CPU, which would double the default CPU run
        return device.startswith("cuda")

    def wrap(self, module):
        import torch

        mode = self.sweep.option("compile_mode") or "default"
        self.mode = mode
        torch._dynamo.config.suppress_errors = False  # never fall back to eager silently
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        return torch.compile(module, mode=mode, dynamic=False, fullgraph=True)

    def info(self) -> dict:
        return {**super().info(), "compile_mode": self.mode}
