"""ONNX Runtime: CPU provider, or the CUDA provider on the runtime group's torch stream with IO binding."""
from __future__ import annotations

import numpy as np

from rtbench.onnx_file import on_shared_pool
from rtbench.runtimes.base import Runtime, Session, register
from rtbench.runtimes.common import end_to_end, host_fp32, onnx_export, torch_dtype


def cuda_provider_options(device_index: int, precision: str, search: str, stream_handle: int, graph: bool) -> dict:
    """CUDAExecutionProvider options: strict fp32 unless tf32, and the kernels on the given CUDA stream.

    ``stream_handle`` must be a real stream's handle: ONNX Runtime takes 0 (the legacy default stream) as
    "no stream" and runs on a stream of its own, which CUDA events recorded on torch's stream do not see.
    """
    opts = {"device_id": str(device_index), "use_tf32": "1" if precision == "tf32" else "0",
            "cudnn_conv_algo_search": search, "do_copy_in_default_stream": "1",
            "has_user_compute_stream": "1", "user_compute_stream": str(stream_handle)}
    if graph:
        opts["enable_cuda_graph"] = "1"
    return opts


@register
class OnnxRuntime(Runtime):
    """``onnxruntime``: the cached ONNX export; threads set as torch's; no silent provider fallback."""

    name = "onnxruntime"
    package = "onnxruntime"
    precisions = ("fp32", "tf32", "fp16")
    needs_torch_module = False  # runs an ONNX model file as given
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

        self.path, self.setup = onnx_export(model, workdir, precision, sweep.sizes)
        self.cuda = self.device.startswith("cuda")
        self.device_index = torch.device(self.device).index or 0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # the same threads as torch, recorded
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if not self.cuda:
            on_shared_pool(ort, opts, make=True)
        self.threads = opts.intra_op_num_threads
        self.opts = opts
        self.ort = ort
        self.dtype = torch_dtype(precision)
        self.np_dtype = np.float16 if precision == "fp16" else np.float32
        self.search = sweep.option("cudnn_conv_algo_search", "EXHAUSTIVE")
        self.sessions: list = []

    def _providers(self, graph: bool) -> list:
        if not self.cuda:
            return ["CPUExecutionProvider"]
        opts = cuda_provider_options(self.device_index, self.precision, self.search, self.stream.cuda_stream, graph)
        return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]

    def _inference_session(self, graph: bool = False):
        """A session of the cell's own (its creation time is the cell's ``session_s``, measured by the caller).

        One per cell, not one per group: cells are measured interleaved, and a session whose input shape changes
        from call to call redoes its per-shape work (memory plans, cuDNN descriptors and searches) on the first
        call after each change; a CUDA graph is also bound to one set of buffers.
        """
        sess = self.ort.InferenceSession(str(self.path), self.opts, providers=self._providers(graph))
        want = self.provider if self.cuda else "CPUExecutionProvider"
        got = sess.get_providers()
        if got[0] != want:
            raise RuntimeError(f"onnxruntime fell back to {got[0]} instead of {want}")
        self.sessions.append(sess)
        return sess

    def prepare(self, cell, x) -> Session:
        sess = self._inference_session(self.graph)
        iname, oname = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        info = {"threads": self.threads, "shared_thread_pool": not self.cuda, "providers": sess.get_providers(),
                "onnx": self.path.name, "tf32": self.precision == "tf32", "io_binding": cell.boundary == "compute"}
        if self.cuda:
            # Run returns once the GPU is done (ORT synchronises its stream): the launch time cannot tell whether
            # the GPU waited for the host, so the cell is never judged launch-bound
            info.update(cudnn_conv_algo_search=self.search, call_waits_for_gpu=True)
        host = x.numpy()  # the cell's fp32 host array itself (a view)

        if cell.boundary == "end-to-end":  # numpy in, numpy out: ORT does the copies inside the call
            call, fetch = end_to_end(lambda: sess.run([oname], {iname: host.astype(self.np_dtype, copy=False)})[0])
            return Session(call=call, fetch=fetch, stream=self.stream, info=info)
        if self.cuda:
            return self._bound_to_device(sess, iname, oname, x, info)
        binding = sess.io_binding()
        binding.bind_cpu_input(iname, host.astype(self.np_dtype))
        binding.bind_output(oname, "cpu")

        def call():
            sess.run_with_iobinding(binding)
        return Session(call=call, fetch=lambda: host_fp32(binding.copy_outputs_to_cpu()[0]), info=info)

    def _bound_to_device(self, sess, iname: str, oname: str, x, info: dict) -> Session:
        """The compute boundary on CUDA: input and output are torch tensors on the GPU, bound once."""
        import torch

        idx = self.device_index
        xd = x.to(device=self.device, dtype=self.dtype).contiguous()
        yd = torch.empty(self._output_shape(sess, oname, iname, x), device=self.device, dtype=self.dtype)
        binding = sess.io_binding()
        binding.bind_input(iname, "cuda", idx, self.np_dtype, list(xd.shape), xd.data_ptr())
        binding.bind_output(oname, "cuda", idx, self.np_dtype, list(yd.shape), yd.data_ptr())
        if self.graph:
            # ORT runs regularly (writing yd) before it captures the graph; recent versions do all of that in
            # the first run, older ones over the first few. Then NaN in yd: what parity reads after the
            # worker's first call was written by a replay.
            for _ in range(3):
                sess.run_with_iobinding(binding)
            yd.fill_(float("nan"))

        def call(_keep=(xd, yd)):  # the bound torch tensors must outlive the binding
            sess.run_with_iobinding(binding)
        return Session(call=call, fetch=lambda: host_fp32(yd), stream=self.stream,
                       info={**info, "cuda_graph": self.graph})

    def _output_shape(self, sess, oname: str, iname: str, x) -> list[int]:
        """The output's shape for input ``x``: from the model when only the batch is symbolic, else from one run of
        a plain session (a graph session must only ever run bound buffers)."""
        dims = list(sess.get_outputs()[0].shape)
        if dims and all(isinstance(d, int) for d in dims[1:]):
            return [int(x.shape[0]), *dims[1:]]
        probe = sess if not self.graph else self._inference_session()
        return list(probe.run([oname], {iname: x.numpy().astype(self.np_dtype)})[0].shape)

    def close(self) -> None:
        self.sessions.clear()


@register
class OnnxRuntimeCudaGraph(OnnxRuntime):
    """``onnxruntime-cudagraph``: the CUDA provider with ``enable_cuda_graph`` (IO binding, fixed buffers)."""

    name = "onnxruntime-cudagraph"
    devices = ("cuda",)
    graph = True
    default = False
