"""A user's ONNX model file: its image input (name, layout, dtype, fixed dims), an NCHW view, a CPU reference.

rtbench feeds every runtime the same NCHW tensor. An NHWC file is run through a cached copy whose new NCHW
input is transposed into the original one, so ONNX Runtime and OpenVINO see the same graph either way.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtbench.errors import UserError

DTYPES = {1: "float32", 10: "float16"}  # onnx.TensorProto.FLOAT, FLOAT16


@dataclass(frozen=True)
class ImageInput:
    """The single image input of an ONNX model."""

    name: str
    layout: str  # NCHW or NHWC
    channels: int
    dtype: str  # float32 or float16
    fixed_size: int | None  # height = width when the file fixes them
    fixed_batch: int | None


def image_input(path: Path) -> ImageInput:
    """Read the image input of the ONNX file; inputs rtbench cannot feed raise UserError naming why."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in weights]
    if len(inputs) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}): rtbench runs "
                        "image models with one image input; export the model with a single input")
    inp = inputs[0]
    t = inp.type.tensor_type
    dtype = DTYPES.get(t.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if dtype is None or len(dims) != 4:
        raise UserError(f"{path}: input {inp.name!r} is {onnx.TensorProto.DataType.Name(t.elem_type)} with "
                        f"{len(dims)} dims; rtbench needs a float32 or float16 image batch (N, C, H, W) or (N, H, W, C)")
    if dims[1] in (1, 3, 4) and dims[3] not in (1, 3, 4):
        layout, channels, hw = "NCHW", dims[1], dims[2:]
    elif dims[3] in (1, 3, 4) and dims[1] not in (1, 3, 4):
        layout, channels, hw = "NHWC", dims[3], dims[1:3]
    else:
        raise UserError(f"{path}: cannot tell the channel axis of input {inp.name!r} {dims}: export it with a fixed "
                        "channel dim of 1, 3 or 4 in NCHW or NHWC order")
    if hw[0] != hw[1] and None not in hw:
        raise UserError(f"{path}: the input is fixed at {hw[0]}x{hw[1]}; rtbench sweeps square sizes, so export "
                        "the model with a square or dynamic height and width")
    fixed = next((d for d in hw if d is not None), None)
    return ImageInput(inp.name, layout, channels, dtype, fixed, dims[0])


def batch_problem(inp: ImageInput, batch: int) -> str | None:
    """None when the file takes ``batch`` images at once, else why not (its batch dimension is fixed)."""
    if inp.fixed_batch is None or inp.fixed_batch == batch:
        return None
    return (f"the ONNX file fixes the batch at {inp.fixed_batch}, so batch {batch} cannot run: "
            "export it with a dynamic batch dimension")


def shape(inp: ImageInput, batch: int, size: int) -> list[int]:
    """The input shape, in the file's own layout, for one batch and size."""
    if inp.layout == "NCHW":
        return [batch, inp.channels, size, size]
    return [batch, size, size, inp.channels]


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """An NCHW array in ``layout``."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def file_key(path: Path) -> str:
    """A cache key for the file's content (size and modification time stand for it)."""
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:10]


def nchw_path(path: Path, inp: ImageInput, cache: Path) -> Path:
    """The file itself when its input is NCHW, else a cached copy with an NCHW input transposed to NHWC."""
    if inp.layout == "NCHW":
        return path
    dst = cache / f"{path.stem}-{file_key(path)}-nchw.onnx"
    if dst.exists():
        return dst
    import onnx
    from onnx import helper

    m = onnx.load(str(path))
    g = m.graph
    old = next(i for i in g.input if i.name == inp.name)
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in old.type.tensor_type.shape.dim]
    new_name = f"{inp.name}_nchw"
    new = helper.make_tensor_value_info(new_name, old.type.tensor_type.elem_type, [dims[0], dims[3], dims[1], dims[2]])
    g.node.insert(0, helper.make_node("Transpose", [new_name], [inp.name], perm=[0, 2, 3, 1], name="rtbench_to_nhwc"))
    g.input.remove(old)
    g.input.insert(0, new)
    tmp = dst.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(m, str(tmp))
    onnx.checker.check_model(str(tmp))
    tmp.replace(dst)
    return dst


_SHARED_POOL: dict[str, int] = {}  # this process's one ONNX Runtime thread pool for CPU sessions, once made


def on_shared_pool(ort, opts, make: bool = False):
    """``opts`` (an ONNX Runtime CPU session's options) on this process's one thread pool, if there is one; ``make``
    (rtbench's onnxruntime runtime on a CPU) makes it first, of ``opts``' thread counts. Returns ``opts``.

    A session per cell (per bucket under load) with a pool of its own leaves each pool's threads spinning after its
    calls, and the next session's threads fight them for the cores: on a 2-core CPU, ResNet18 at 64 px called
    through three sessions in turn took 6.8-9.0 ms at batch 2 and 21.4-22.9 ms at batch 4 against 2.3-2.6 and 4.4
    back to back; on one shared pool 3.1 and 5.9-6.0, back-to-back calls unchanged
    (benchmarks/results/ort-thread-pools-cpu.md). A worker serves one group, so the pool has one size: the first.
    Once it exists ONNX Runtime refuses sessions with a pool of their own, so every later CPU session of the
    process (an ONNX file's parity reference, say) runs on it too.
    """
    if make and not _SHARED_POOL:
        ort.set_global_thread_pool_sizes(opts.intra_op_num_threads, opts.inter_op_num_threads)
        _SHARED_POOL["threads"] = opts.intra_op_num_threads
    if _SHARED_POOL:
        opts.use_per_session_threads = False
    return opts


def reference(path: Path, inp: ImageInput, x) -> np.ndarray:
    """ONNX Runtime CPU outputs (first output, float32) of the file for the NCHW host tensor ``x``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), on_shared_pool(ort, opts), providers=["CPUExecutionProvider"])
    feed = to_layout(x.numpy(), inp.layout).astype(inp.dtype)
    return np.asarray(sess.run(None, {inp.name: feed})[0], dtype=np.float32)
