"""Output parity against PyTorch fp32 on the same weights and input, with a tolerance per precision."""
from __future__ import annotations

import copy
import functools

import numpy as np

# Largest error allowed, relative to the largest reference magnitude (max |out - ref| / max |ref|).
TOLERANCE = {"fp32": 1e-3, "tf32": 1e-2, "fp16": 3e-2, "bf16": 8e-2}


def compare(out: np.ndarray, ref: np.ndarray, precision: str, against: str = "PyTorch fp32") -> dict:
    """Max abs error, max relative error (to the reference's scale), top-1 agreement, and a verdict.

    ``against`` names the reference (PyTorch fp32, or ONNX Runtime CPU for an ONNX file); it is recorded.
    """
    out = np.asarray(out, dtype=np.float32).reshape(ref.shape[0], -1)
    ref = np.asarray(ref, dtype=np.float32).reshape(ref.shape[0], -1)
    if out.shape != ref.shape:
        return {"ok": False, "reason": f"output shape {out.shape} differs from the reference's {ref.shape} ({against})",
                "reference": against}
    if not np.all(np.isfinite(out)):
        return {"ok": False, "reason": "output has NaN or Inf", "max_abs": float("inf"), "max_rel": float("inf")}
    err = np.abs(out - ref)
    scale = float(np.max(np.abs(ref))) or 1.0
    max_abs = float(err.max())
    max_rel = max_abs / scale
    top1 = float(np.mean(out.argmax(axis=1) == ref.argmax(axis=1)))
    tol = TOLERANCE[precision]
    ok = max_rel <= tol
    res = {"ok": ok, "max_abs": max_abs, "max_rel": max_rel, "top1_agree": top1, "tolerance": tol, "reference": against}
    if not ok:
        res["reason"] = f"outputs differ from {against}: max rel error {max_rel:.2e} > {tol:.0e} ({precision})"
    return res


@functools.lru_cache(maxsize=1)
def _on_device(module, device: str):
    """One fp32 copy of the module on the GPU, reused for every (size, batch) of a worker's cells."""
    return copy.deepcopy(module).to(device)


def reference(model, x, device: str) -> np.ndarray:
    """PyTorch fp32 outputs (TF32 off) for host input ``x`` on ``device``; ONNX Runtime CPU for an ONNX file."""
    if not getattr(model, "has_module", True):
        return model.reference(x)

    import torch

    from rtbench.runtimes.common import set_tf32

    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    set_tf32("fp32")
    torch.backends.cudnn.benchmark = False  # one call per shape: autotuning it would cost more than it runs
    try:
        m = model.module if device == "cpu" else _on_device(model.module, device)
        with torch.inference_mode():
            return m(x.to(device)).float().cpu().numpy()
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = flags
