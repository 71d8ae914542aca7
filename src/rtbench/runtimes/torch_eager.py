"""PyTorch runtimes: eager (the baseline), eager replayed from a CUDA graph, and torch.compile."""
from __future__ import annotations

import copy
import time

from rtbench.runtimes.base import Runtime, Session, register
from rtbench.runtimes.common import host_fp32, set_tf32, to_device, torch_calls, torch_dtype


@register
class TorchEager(Runtime):
    """``torch``: the module in eager mode under ``inference_mode``."""

    name = "torch"
    package = "torch"
    settings = {**Runtime.settings, "channels_last": ("auto", "on", "off"), "cudnn_benchmark": ("on", "off")}

    @classmethod
    def search_space(cls, device: str) -> dict:
        return {**super().search_space(device), "channels_last": ("on", "off")}

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        import torch

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

    def apply_settings(self) -> dict:
        """Set TF32 per the precision and cuDNN's autotuner (process-wide), make the group's stream current."""
        import torch

        settings = super().apply_settings()
        # the cuDNN autotuner picks conv algorithms per shape on the first call (setup), as ONNX Runtime's
        # EXHAUSTIVE search does; without it some shapes get far slower heuristic choices
        torch.backends.cudnn.benchmark = self.sweep.option("cudnn_benchmark", "on") == "on"
        return {**settings, "tf32": set_tf32(self.precision), "cudnn_benchmark": torch.backends.cudnn.benchmark}

    def describe(self) -> dict:
        """What this group runs with, recorded in each cell's info."""
        import torch

        return {"threads": torch.get_num_threads(), "channels_last": self.channels_last,
                "dtype": str(self.dtype).replace("torch.", "")}

    def prepare(self, cell, x) -> Session:
        import torch

        m = self.module

        def infer(xi):
            with torch.inference_mode():
                return m(xi)

        info = self.describe()
        if self.graph:  # compute boundary only (the base class refuses the others)
            xd = to_device(x, self.device, self.dtype, self.channels_last)
            call, y = self._capture(lambda: infer(xd))
            return Session(call=call, fetch=lambda: host_fp32(y), stream=self.stream, info={**info, "cuda_graph": True})
        call, fetch = torch_calls(infer, x, cell.boundary, self.device, self.dtype, self.channels_last)
        return Session(call=call, fetch=fetch, stream=self.stream, info=info)

    @staticmethod
    def _capture(run):
        """Capture ``run`` (whose input is static) in one CUDA graph: returns its replay and static output.

        The output is filled with NaN after capture, so what parity reads after the first call was written
        by a replay, not by the warm-up runs. The replay keeps ``run`` (and through it the static input) alive:
        freed, its memory would go back to the allocator, and the next capture's ``empty_cache`` would unmap
        it under this graph (an illegal memory access at the next replay, seen with several batch buckets).
        """
        import torch

        current = torch.cuda.current_stream()
        side = torch.cuda.Stream(current.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream before capture, as CUDA graphs require
                run()
        current.wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = run()
        with torch.inference_mode():  # y is an inference tensor
            y.fill_(float("nan"))

        def replay(_keep=run):
            g.replay()
        return replay, y


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

    Mode ``default`` unless the sweep asks for another (--compile-mode); ``freezing=on`` (off unless asked: it costs
    compile time, and ``rtbench run`` measures torch.compile as it is called by default) folds batch norms into the
    convolutions (inductor's weights-as-constants pass, inference only). On the H200, ResNet18 fp16 224 px
    batch 16 compiled in 4.1 s and ran in 0.99 ms with it, against 90 s and 1.14 ms with
    max-autotune-no-cudagraphs (benchmarks/results/h200-2026-11-28/compile-modes.md).
    """

    name = "torch-compile"
    compiles = True
    MODES = ("default", "max-autotune", "reduce-overhead", "max-autotune-no-cudagraphs")
    settings = {**TorchEager.settings, "compile_mode": MODES, "freezing": ("on", "off")}

    @classmethod
    def is_default(cls, device: str) -> bool:
        # ~4-7 s per shape on the H200; 7-24 s per shape on a 2-core CPU, which would double the default CPU run
        return device.startswith("cuda")

    @classmethod
    def search_space(cls, device: str) -> dict:
        # max-autotune takes minutes per shape on a CPU; reduce-overhead is CUDA graphs. Freezing is tried on a GPU,
        # where it costs seconds: on the H200, ResNet18 fp16 channels_last in the default mode ran 7.5% faster with
        # it at batch 1024 (11.18 ms against 12.01, benchmarks/results/h200-2026-12-02/freezing-report.md); on a 2-core
        # CPU it doubled the compile of a small CNN (28 s against 14)
        if not device.startswith("cuda"):
            return {**super().search_space(device), "compile_mode": cls.MODES[:1]}
        return {**super().search_space(device), "compile_mode": cls.MODES[:3], "freezing": ("on", "off")}

    def wrap(self, module):
        import torch

        self.mode = self.sweep.option("compile_mode") or "default"
        if self.mode not in self.MODES:
            from rtbench.runtimes.base import Unsupported

            raise Unsupported(f"unknown torch.compile mode {self.mode!r}: use one of {', '.join(self.MODES)}")
        self.freezing = self.sweep.option("freezing", "off") == "on"
        return torch.compile(module, mode=self.mode, dynamic=False, fullgraph=True)

    def prepare(self, cell, x) -> Session:
        """Compile here, at the first call (its seconds and whether inductor's on-disk caches had it are recorded),
        so that the cell's set-up says "compiled" or "from cache"."""
        from torch._dynamo.utils import counters

        from rtbench.runtimes.common import sync

        s = super().prepare(cell, x)
        before = dict(counters["inductor"])
        t0 = time.perf_counter()
        s.call()
        sync(self.device)
        took = time.perf_counter() - t0
        hits, misses = (counters["inductor"].get(k, 0) - before.get(k, 0) for k in ("fxgraph_cache_hit",
                                                                                   "fxgraph_cache_miss"))
        s.info.update(compile_s=took, compile_cache="hit" if hits and not misses else "miss" if misses else "none")
        return s

    def apply_settings(self) -> dict:
        """Also set dynamo's process-wide configuration (compilation happens at the first call)."""
        import torch
        import torch._inductor.config as inductor

        torch._dynamo.config.suppress_errors = False  # never fall back to eager silently
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        inductor.freezing = self.freezing  # part of inductor's cache key
        return super().apply_settings()

    def describe(self) -> dict:
        return {**super().describe(), "compile_mode": self.mode, "freezing": self.freezing}
