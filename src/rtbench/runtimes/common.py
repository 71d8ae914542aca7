"""What several runtimes need: precision mapping, TF32 switches, input making, the cached ONNX export."""
from __future__ import annotations

import hashlib
import os
import time
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


def check_precision(device: str, precision: str) -> None:
    """Raise Unsupported for precisions the device cannot run as asked."""
    import torch

    if precision == "tf32" and not device.startswith("cuda"):
        raise Unsupported("tf32 exists only on CUDA GPUs (Ampere or newer)")
    if precision == "tf32" and torch.cuda.get_device_capability(device)[0] < 8:
        raise Unsupported("tf32 needs an Ampere or newer GPU")
    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise Unsupported("this GPU has no bf16")


def make_input(batch: int, size: int, channels: int = 3):
    """The cell's input: the same seeded fp32 NCHW host tensor for every runtime of a (size, batch)."""
    import torch

    g = torch.Generator().manual_seed(INPUT_SEED + 7919 * size + batch)
    return torch.randn(batch, channels, size, size, generator=g)


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


def to_numpy(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()
