"""Runtimes that exist only in the tests: they claim fp32 but silently compute in a lower precision.

Loaded with ``RTBENCH_PLUGINS=downcast_runtimes`` (tests/ on the path). Each is a real runtime run at
another precision whose outputs come back as fp32, as a runtime with a silent downcast would: the output
check must call every one of them ``mismatch`` at the fp32 tolerance.
"""
from __future__ import annotations

from rtbench.runtimes.base import Unsupported, register
from rtbench.runtimes.onnxruntime import OnnxRuntime
from rtbench.runtimes.torch_eager import TorchEager


class _Downcast:
    """Mixin: accept only fp32 cells, then build the runtime at ``runs_as`` instead."""

    runs_as: str
    default = False

    def __init__(self, model, sweep, precision, workdir):
        if precision != "fp32":
            raise Unsupported(f"{self.name} claims fp32 only")
        super().__init__(model, sweep, self.runs_as, workdir)


@register
class TorchFp16AsFp32(_Downcast, TorchEager):
    name = "torch-fp16-as-fp32"
    runs_as = "fp16"


@register
class TorchBf16AsFp32(_Downcast, TorchEager):
    name = "torch-bf16-as-fp32"
    runs_as = "bf16"


@register
class TorchTf32AsFp32(_Downcast, TorchEager):
    name = "torch-tf32-as-fp32"
    runs_as = "tf32"
    devices = ("cuda",)


@register
class OnnxRuntimeTf32AsFp32(_Downcast, OnnxRuntime):
    """ONNX Runtime's CUDA provider with ``use_tf32=1`` in an fp32 cell."""

    name = "onnxruntime-tf32-as-fp32"
    runs_as = "tf32"
    devices = ("cuda",)
