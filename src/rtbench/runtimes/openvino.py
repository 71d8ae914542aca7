"""OpenVINO on the CPU: the shared ONNX model, reshaped to each cell's static shape and compiled for latency.

Settings, recorded in Session.info: PERFORMANCE_HINT=LATENCY (per-batch timing), INFERENCE_NUM_THREADS = torch's
thread count, and INFERENCE_PRECISION_HINT set from the asked precision. A CPU with bf16 (or fp16) units runs
fp32 models in that lower precision by default; rtbench forces f32 for ``fp32`` and records what the CPU
would have chosen.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from rtbench.runtimes.base import Runtime, Session, Unsupported, register
from rtbench.runtimes.common import cache_dir, end_to_end, onnx_export

HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}  # OPTIMIZATION_CAPABILITIES entry a lower precision needs


@functools.lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


def cpu_facts() -> dict:
    """The CPU's default inference precision and optimisation capabilities (for the env fingerprint)."""
    core = _core()
    return {"version": _version(),
            "cpu_default_inference_precision": _type_name(core.get_property("CPU", "INFERENCE_PRECISION_HINT")),
            "cpu_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}


def _type_name(t) -> str:
    """'f32', 'bf16', 'f16' for an openvino element type."""
    return t.get_type_name() if hasattr(t, "get_type_name") else str(t)


def _version() -> str:
    import openvino as ov

    return ov.get_version()


def hint_for(precision: str, capabilities: list[str]) -> str:
    """The INFERENCE_PRECISION_HINT for ``precision`` (one of HINTS) on a CPU with ``capabilities``.

    Unsupported when the CPU has no such units.
    """
    need = CAPABILITY.get(precision)
    if need and need not in capabilities:
        raise Unsupported(f"this CPU has no {precision} inference in OpenVINO (capabilities: {', '.join(capabilities)})")
    return HINTS[precision]


@register
class OpenVino(Runtime):
    """``openvino``: CPU plugin, latency hint, torch's thread count, fp32 forced where the CPU would pick bf16."""

    name = "openvino"
    package = "openvino"
    devices = ("cpu",)
    precisions = ("fp32", "fp16", "bf16")
    precisions_note = "fp16 and bf16 where the CPU has them"
    needs_torch_module = False  # runs an ONNX model file as given

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        import torch

        core = _core()
        facts = cpu_facts()
        self.hint = hint_for(precision, facts["cpu_capabilities"])
        self.threads = torch.get_num_threads()  # the same threads as torch, recorded
        # the precision hint does the lowering, so the fp32 model is read (an fp16 file is read as it is)
        self.path, self.setup = onnx_export(model, workdir, "fp16" if _file_dtype(model) == "float16" else "fp32",
                                            sweep.sizes)
        t0 = time.perf_counter()
        self.ov_model = core.read_model(str(self.path))
        self.setup["openvino_read_s"] = time.perf_counter() - t0
        self.np_dtype = np.float16 if _file_dtype(model) == "float16" else np.float32
        self.cache = cache_dir(workdir) / "openvino"  # compiled blobs, reused by later cells and runs
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads,
                       "INFERENCE_PRECISION_HINT": self.hint}
        default = facts["cpu_default_inference_precision"]
        self.base_info = {"threads": self.threads, "device": "CPU", "performance_hint": "LATENCY",
                          "inference_precision": self.hint, "cpu_default_inference_precision": default,
                          "fp32_forced": precision == "fp32" and default != "f32", "onnx": self.path.name,
                          "openvino": facts["version"], "parity_reference": model.parity_reference}

    def _compile(self, cell):
        """Reshape to the cell's static shape and compile; returns the compiled model and its seconds."""
        core = _core()
        inp = self.ov_model.input(0)
        self.ov_model.reshape({inp: [cell.batch, self.model.channels, cell.size, cell.size]})
        t0 = time.perf_counter()
        compiled = core.compile_model(self.ov_model, "CPU", {**self.config, "CACHE_DIR": str(self.cache)})
        return compiled, time.perf_counter() - t0

    def prepare(self, cell, x) -> Session:
        compiled, compile_s = self._compile(cell)
        ran = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        info = {**self.base_info, "compile_s": compile_s, "inference_precision_ran": ran,
                "compile_cache": "hit" if _loaded_from_cache(compiled) else "miss",
                "io": "shared input tensor, outputs read from the request" if cell.boundary == "compute"
                else "numpy in, numpy out"}
        host = x.numpy()  # the cell's fp32 host array itself (a view)
        req = compiled.create_infer_request()

        if cell.boundary == "end-to-end":  # numpy in, numpy out: the copies are inside the call
            call, fetch = end_to_end(lambda: req.infer({0: host.astype(self.np_dtype, copy=False)})[0])
            return Session(call=call, fetch=fetch, info=info)

        import openvino as ov

        shared = np.ascontiguousarray(host.astype(self.np_dtype))
        req.set_input_tensor(ov.Tensor(shared, shared_memory=True))  # set once; no copy per call

        def call(_keep=shared):
            req.infer(share_outputs=True)
        return Session(call=call, fetch=lambda: np.array(req.get_output_tensor(0).data, dtype=np.float32), info=info)


def _loaded_from_cache(compiled) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except Exception:  # noqa: BLE001 - an OpenVINO without the property: not from the cache as far as we know
        return False


def _file_dtype(model) -> str:
    inp = getattr(model, "onnx_input", None)
    return inp.dtype if inp is not None else "float32"
