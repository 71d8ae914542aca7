"""ONNX Runtime: CPU provider, or the CUDA provider on torch's stream with IO binding."""
from __future__ import annotations

import numpy as np

from rtbench.runtimes.base import Runtime, Session, Unsupported, register
from rtbench.runtimes.common import check_precision, onnx_export, to_numpy, torch_dtype


@register
class OnnxRuntime(Runtime):
    """``onnxruntime``: the cached ONNX export; threads set as torch's; no silent provider fallback."""

    name = "onnxruntime"
    package = "onnxruntime"
    precisions = ("fp32", "tf32", "fp16")
    needs_torch_module = False  # runs an ONNX model file as given
    graph = False
    provider = "CUDAExecutionProvider"  # the provider asked for on CUDA (subclasses: TensorRT)

    @classmethod
    def version(cls):
        import importlib.metadata as md

        for dist in ("onnxruntime-gpu", "onnxruntime"):
            try:
                return md.version(dist)
            except md.PackageNotFoundError:
                continue
        return None

    @classmethod
    def availability(cls, device):
        ok, why = super().availability(device)
        if ok and device.startswith("cuda"):
            import torch  # noqa: F401  (loads the CUDA libraries ORT's CUDA provider needs)
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return False, "onnxruntime has no CUDA provider here (pip install onnxruntime-gpu)"
        return ok, why

    def __init__(self, model, sweep, precision, workdir):
        super().__init__(model, sweep, precision, workdir)
        import torch
        import onnxruntime as ort

        if precision not in self.precisions:
            raise Unsupported(f"onnxruntime runs fp32, tf32 and fp16 here, not {precision}")
        check_precision(self.device, precision)
        self.path, self.setup = onnx_export(model, workdir, precision, sweep.sizes)
        self.cuda = self.device.startswith("cuda")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # the same threads as torch, recorded
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.threads = opts.intra_op_num_threads
        self.opts = opts
        self.ort = ort
        self.dtype = torch_dtype(precision)
        self.np_dtype = np.float16 if precision == "fp16" else np.float32
        self.search = sweep.option("cudnn_conv_algo_search", "EXHAUSTIVE")
        self.session_cache: dict = {}

    def _providers(self, device_index: int, stream, graph: bool) -> list:
        if not self.cuda:
            return ["CPUExecutionProvider"]
        cuda = {"device_id": str(device_index), "use_tf32": "1" if self.precision == "tf32" else "0",
                "cudnn_conv_algo_search": self.search, "do_copy_in_default_stream": "1",
                "has_user_compute_stream": "1", "user_compute_stream": str(stream.cuda_stream)}
        if graph:
            cuda["enable_cuda_graph"] = "1"
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]

    def _inference_session(self, device_index: int, stream, graph: bool = False):
        """The group's session (dynamic shapes). A CUDA graph is bound to one set of buffers: one per cell.

        Its creation time is part of the first cell's ``session_s`` (measured by the caller).
        """
        if graph or "plain" not in self.session_cache:
            sess = self.ort.InferenceSession(str(self.path), self.opts,
                                             providers=self._providers(device_index, stream, graph))
            want = self.provider if self.cuda else "CPUExecutionProvider"
            got = sess.get_providers()
            if got[0] != want:
                raise RuntimeError(f"onnxruntime fell back to {got[0]} instead of {want}")
            if graph:
                return sess
            self.session_cache["plain"] = sess
        return self.session_cache["plain"]

    def session(self, cell, x) -> Session:
        import torch

        if self.graph and cell.boundary != "compute":
            raise Unsupported("CUDA graphs need inputs already on the GPU: use the compute boundary")
        dev = torch.device(self.device)
        stream = torch.cuda.current_stream(dev) if self.cuda else None
        sess = self._inference_session(dev.index or 0, stream, self.graph)
        iname, oname = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        info = {"threads": self.threads, "providers": sess.get_providers(), "onnx": self.path.name,
                "tf32": self.precision == "tf32", "io_binding": cell.boundary == "compute"}
        if self.cuda:
            info["cudnn_conv_algo_search"] = self.search
        host = x.numpy().astype(self.np_dtype)
        out: list = [None]

        if cell.boundary == "end-to-end":  # numpy in, numpy out: ORT does the copies inside the call
            def call():
                out[0] = sess.run([oname], {iname: host})[0]
            return Session(call=call, fetch=lambda: out[0].astype(np.float32), stream=stream, info=info)

        binding = sess.io_binding()
        if self.cuda:
            xd = x.to(device=dev, dtype=self.dtype).contiguous()
            # the output shape, learnt once before timing (a graph session must only ever run bound buffers)
            probe = self._inference_session(idx := dev.index or 0, stream).run([oname], {iname: host})[0]
            yd = torch.empty(probe.shape, device=dev, dtype=self.dtype)
            binding.bind_input(iname, "cuda", idx, self.np_dtype, list(xd.shape), xd.data_ptr())
            binding.bind_output(oname, "cuda", idx, self.np_dtype, list(yd.shape), yd.data_ptr())

            def call(_keep=(xd, yd)):  # the bound torch tensors must outlive the binding
                sess.run_with_iobinding(binding)
            return Session(call=call, fetch=lambda: to_numpy(yd), stream=stream, info={**info, "cuda_graph": self.graph})
        binding.bind_cpu_input(iname, host)
        binding.bind_output(oname, "cpu")

        def call():
            sess.run_with_iobinding(binding)
        return Session(call=call, fetch=lambda: binding.copy_outputs_to_cpu()[0].astype(np.float32), info=info)

    def close(self) -> None:
        self.session_cache.clear()


@register
class OnnxRuntimeCudaGraph(OnnxRuntime):
    """``onnxruntime-cudagraph``: the CUDA provider with ``enable_cuda_graph`` (IO binding, fixed buffers)."""

    name = "onnxruntime-cudagraph"
    devices = ("cuda",)
    graph = True
    default = False
