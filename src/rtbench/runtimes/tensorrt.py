"""TensorRT runtimes: Torch-TensorRT (dynamo path) and ONNX Runtime's TensorRT execution provider.

Both build a TensorRT engine per cell shape; the build is setup (session seconds, and the first call for
ONNX Runtime, which builds lazily), never latency. Engine and timing caches live in ``<out>/cache/trt``.
Written against the documented APIs; not yet verified on hardware by this project (see README).
"""
from __future__ import annotations

import ctypes.util
import importlib.util
import time

from rtbench.runtimes.base import Runtime, Session, register
from rtbench.runtimes.common import cache_dir, set_tf32, torch_calls, torch_dtype
from rtbench.runtimes.onnxruntime import OnnxRuntime

NOT_INSTALLED = "TensorRT is not installed (pip install torch-tensorrt / tensorrt)"


def tensorrt_installed() -> bool:
    """TensorRT's Python package or its library (libnvinfer) is present."""
    return importlib.util.find_spec("tensorrt") is not None or ctypes.util.find_library("nvinfer") is not None


def trt_cache(workdir) -> str:
    d = cache_dir(workdir) / "trt"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def torch_trt_settings(precision: str, cache: str) -> dict:
    """torch_tensorrt.compile keyword arguments for ``precision`` (strict fp32 means TF32 off)."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    return {"ir": "dynamo", "enabled_precisions": {dtype}, "disable_tf32": precision == "fp32",
            "cache_built_engines": True, "reuse_cached_engines": True, "engine_cache_dir": cache,
            "timing_cache_path": f"{cache}/timing_cache.bin"}


def ort_trt_options(precision: str, device_index: int, cache: str, stream_handle: int) -> dict:
    """TensorrtExecutionProvider options for ``precision``: fp16 enabled when asked, caches in the output folder."""
    return {"device_id": str(device_index), "trt_fp16_enable": "1" if precision == "fp16" else "0",
            "trt_engine_cache_enable": "1", "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "1", "trt_timing_cache_path": cache,
            "has_user_compute_stream": "1", "user_compute_stream": str(stream_handle)}


@register
class TorchTensorRT(Runtime):
    """``torch-tensorrt``: torch_tensorrt.compile(ir="dynamo") per cell shape; the build is setup."""

    name = "torch-tensorrt"
    package = "torch_tensorrt"
    distribution = "torch-tensorrt"
    devices = ("cuda",)
    precisions = ("fp32", "tf32", "fp16", "bf16")
    default = False  # an engine build per shape costs minutes; ask for it with --runtimes

    @classmethod
    def availability(cls, device):
        if importlib.util.find_spec("torch_tensorrt") is None or not tensorrt_installed():
            return False, NOT_INSTALLED
        return super().availability(device)

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        self.dtype = torch_dtype(precision)
        self.settings = torch_trt_settings(precision, trt_cache(workdir))
        t0 = time.perf_counter()
        import copy

        self.module = copy.deepcopy(model.module).to(device=self.device, dtype=self.dtype)
        self.setup["module_to_device_s"] = time.perf_counter() - t0

    def apply_settings(self) -> dict:
        """Set torch's TF32 flags per the precision (process-wide) and make the group's stream current."""
        return {**super().apply_settings(), "torch_tf32": set_tf32(self.precision)}

    def prepare(self, cell, x) -> Session:
        import torch
        import torch_tensorrt

        spec = [torch_tensorrt.Input(shape=list(x.shape), dtype=self.dtype)]
        t0 = time.perf_counter()
        trt_module = torch_tensorrt.compile(self.module, inputs=spec, device=torch.device(self.device), **self.settings)
        build_s = time.perf_counter() - t0

        def infer(xi):
            with torch.inference_mode():
                return trt_module(xi)

        call, fetch = torch_calls(infer, x, cell.boundary, self.device, self.dtype)
        info = {"trt_build_s": build_s, "precision_set": sorted(str(d) for d in self.settings["enabled_precisions"]),
                "tf32": not self.settings["disable_tf32"], "engine_cache": self.settings["engine_cache_dir"],
                "torch_tensorrt": torch_tensorrt.__version__}
        return Session(call=call, fetch=fetch, stream=self.stream, info=info)


@register
class OnnxRuntimeTensorRT(OnnxRuntime):
    """``onnxruntime-tensorrt``: ONNX Runtime with the TensorRT provider first (CUDA provider for the rest).

    The provider has no switch to forbid TF32, so strict ``fp32`` is unsupported; ``tf32`` is TensorRT's
    fp32 build (TF32 allowed), ``fp16`` sets trt_fp16_enable. Engines build lazily: the first call of a shape.
    """

    name = "onnxruntime-tensorrt"
    devices = ("cuda",)
    precisions = ("tf32", "fp16")
    precisions_note = "the TensorRT provider has no switch to forbid TF32: use tf32 (TensorRT's fp32 build) or fp16"
    provider = "TensorrtExecutionProvider"
    default = False

    @classmethod
    def version(cls):
        import importlib.metadata as md

        try:
            return f"{super().version()} + TensorRT {md.version('tensorrt')}"
        except md.PackageNotFoundError:
            return super().version()

    @classmethod
    def availability(cls, device):
        if not tensorrt_installed():
            return False, NOT_INSTALLED
        ok, why = super().availability(device)
        if ok:
            import onnxruntime as ort

            if cls.provider not in ort.get_available_providers():
                return False, "onnxruntime has no TensorRT provider here (pip install onnxruntime-gpu)"
        return ok, why

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        self.trt_cache = trt_cache(workdir)

    def _providers(self, graph: bool) -> list:
        opts = ort_trt_options(self.precision, self.device_index, self.trt_cache, self.stream.cuda_stream)
        return [(self.provider, opts), *super()._providers(graph)]

    def prepare(self, cell, x) -> Session:
        s = super().prepare(cell, x)
        s.info.update({"trt_fp16_enable": self.precision == "fp16", "trt_engine_cache_path": self.trt_cache})
        return s
