"""What several runtimes need: precision mapping, TF32 switches, input making and placing, the end-to-end
call, the cached ONNX export."""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtbench.runtimes.base import Unsupported

INPUT_SEED = 1234


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def set_tf32(precision: str) -> bool:
    """Strict fp32 unless tf32 was asked: TF32 off in torch matmul and cuDNN. Returns the TF32 flag set."""
    import torch

    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    return on


def make_input(batch: int, size: int, channels: int = 3):
    """The cell's input: the same seeded fp32 NCHW host tensor for every runtime of a (size, batch)."""
    import torch

    g = torch.Generator().manual_seed(INPUT_SEED + 7919 * size + batch)
    return torch.randn(batch, channels, size, size, generator=g)


def to_device(x, device, dtype, channels_last: bool = False):
    """The host fp32 NCHW tensor ``x`` as a torch runtime's input: on ``device``, in ``dtype`` and layout."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(device=device, dtype=dtype).contiguous(memory_format=fmt)


def host_fp32(y) -> np.ndarray:
    """An output (a numpy array, or a torch tensor on any device) as a float32 host numpy array."""
    if isinstance(y, np.ndarray):
        return y.astype(np.float32, copy=False)
    return y.detach().float().cpu().numpy()


def end_to_end(run: Callable[[], object]) -> tuple[Callable[[], None], Callable[[], np.ndarray]]:
    """``call`` and ``fetch`` for the end-to-end boundary.

    ``run`` reads the cell's fp32 host array itself (not a converted copy made beforehand) and does every
    conversion on the way in; ``call`` turns its output into an fp32 host array, so all of it is timed.
    ``fetch`` returns that array as it is.
    """
    out: list = [None]

    def call() -> None:
        out[0] = host_fp32(run())

    return call, lambda: out[0]


def torch_calls(fn: Callable, x, boundary: str, device, dtype, channels_last: bool = False):
    """``call`` and ``fetch`` running the torch callable ``fn`` on the host tensor ``x`` per the boundary.

    compute: ``x`` is placed on the device here, once, and outputs stay there. end-to-end: see ``end_to_end``.
    """
    if boundary == "end-to-end":
        return end_to_end(lambda: fn(to_device(x, device, dtype, channels_last)))
    xd = to_device(x, device, dtype, channels_last)
    out: list = [None]

    def call() -> None:
        out[0] = fn(xd)

    return call, lambda: host_fp32(out[0])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def cache_dir(workdir: Path) -> Path:
    d = Path(workdir) / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def onnx_export(model, workdir: Path, precision: str = "fp32", sizes: tuple[int, ...] = ()) -> tuple[Path, dict]:
    """Export the model to ONNX once (dynamic batch, height, width), checked; cached in the output folder.

    For an ONNX model file the user's file is returned as it is (an NCHW copy when its input is NHWC).
    fp16 models are converted from the fp32 model with onnxconverter-common (inputs and outputs stay
    fp16). ``sizes`` (the sweep's) are candidate trace sizes for a model that rejects 224x224 inputs.
    Returns the path and setup seconds (zero when the cache was hit).
    """
    from filelock import FileLock

    # the tune prepares its ONNX Runtime arms in parallel workers, and runs may share an --out: one exports, the
    # others wait for the file
    with FileLock(cache_dir(workdir) / ".onnx-export.lock"):
        return _onnx_export(model, workdir, precision, sizes)


def _onnx_export(model, workdir: Path, precision: str, sizes: tuple[int, ...]) -> tuple[Path, dict]:
    setup: dict = {}
    if getattr(model, "onnx_path", None) is not None:
        from rtbench.onnx_file import file_key, nchw_path

        fp32_path = nchw_path(model.onnx_path, model.onnx_input, cache_dir(workdir))
        stem = f"{model.onnx_path.stem}-{file_key(model.onnx_path)}"
        if model.onnx_input.dtype == "float16":  # a file in fp16 runs as fp16 only
            if precision != "fp16":
                raise Unsupported(f"the ONNX file takes float16 inputs: it runs as fp16 only, not {precision}")
            return fp32_path, setup
    else:
        import torch

        ident = f"{model.source}:{model.name}:{model.weights_key}:{torch.__version__}"  # new weights, new export
        key = hashlib.sha1(ident.encode()).hexdigest()[:10]
        stem = f"{model.name.replace(':', '_').replace('/', '_')}-{key}"
        fp32_path = cache_dir(workdir) / f"{stem}-fp32.onnx"
        if not fp32_path.exists():
            t0 = time.perf_counter()
            _export(model, fp32_path, trace_size(model, sizes))
            setup["onnx_export_s"] = time.perf_counter() - t0
    if precision in ("fp32", "tf32"):
        return fp32_path, setup
    if precision != "fp16":
        raise Unsupported(f"ONNX models are exported in fp32 and fp16 only, not {precision}")
    path = cache_dir(workdir) / f"{stem}-fp16.onnx"
    if not path.exists():
        t0 = time.perf_counter()
        _convert_fp16(fp32_path, path)
        setup["onnx_fp16_convert_s"] = time.perf_counter() - t0
    return path, setup


def trace_size(model, sizes: tuple[int, ...] = ()) -> int:
    """The input size to trace the export at: the fixed size, else 224 or a sweep size the model takes."""
    if model.fixed_size is not None:
        return model.fixed_size
    return next((s for s in (224, *sizes) if model.check_size(s) is None), 224)


def _export(model, path: Path, size: int = 224) -> None:
    import onnx
    import torch

    x = torch.randn(1, model.channels, size, size)
    dims = {0: "batch"} if model.fixed_size else {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad():
        torch.onnx.export(model.module, (x,), str(tmp), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": dims, "output": {0: "batch"}}, opset_version=17, dynamo=False)
    onnx.checker.check_model(str(tmp), full_check=True)
    tmp.replace(path)  # atomic: a concurrent run never reads half a file


def _convert_fp16(src: Path, dst: Path) -> None:
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise Unsupported("fp16 ONNX needs onnxconverter-common (pip install onnxconverter-common)") from None
    m = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=False)
    tmp = dst.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(m, str(tmp))
    onnx.checker.check_model(str(tmp))
    tmp.replace(dst)
